"""One attention call for all of the ViT's windows (`train.vit_attention: varlen`), where transformers makes one per window.

Qwen2.5-VL's vision tower attends within 112-pixel windows (8 x 8 patches) in all but 4 of its 32 blocks. Under
SDPA, transformers' vision attention splits the patches at every window edge (after a `.tolist()` that waits for the
GPU) and calls SDPA once per window: a 1008 x 1008 image has 81 windows, so two such images make ~4,500 calls of 64
tokens in one sample's forward. Only flash-attention implementations take the other branch, one variable-length
call with the windows given as cumulative lengths. flash-attn is often not installed (it was not on our H200), but
torch ships a FlashAttention-2 variable-length kernel (`torch.nn.attention.varlen.varlen_attn`). `install()` registers
it as an attention implementation and switches only the vision config to it, so the LLM keeps SDPA. Without a CUDA kernel (CPU)
the same call runs as one SDPA call with a block-diagonal mask, which tests compare with transformers' own loop.

Why it matters: on one H200, a 3B-shaped model's SFT step spent 2.36 s of host time in the ViT's forward (under
torch.profiler) against 0.45 s of its kernels, with 19k attention calls a step; this switch made `codedance sft` 1.37x
faster (docs/performance.md, issue 20).
Installed inside `swift sft` by our plug-in file (sft_plugin.py) when the recipe asks for it, which `codedance sft`
says through the environment (VIT_VARLEN_ENV). With `attn_impl: flash_attn` (flash-attn installed) the ViT takes
transformers' own varlen branch and this switch is not needed.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
import sys
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from codedance_cli.engines.swift.args import VIT_VARLEN_ENV

ROUTED = "codedance: vision windows in one varlen attention call a block"  # the log line saying it is on
NAME = "codedance_flash_varlen_vit"  # "flash" in the name is what routes the ViT to transformers' varlen branch


@functools.cache
def varlen_kernel() -> Callable[..., Any] | None:
    """torch's variable-length FlashAttention, or None where this torch has none (looked up once: every block asks)."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    return varlen_attn


def block_diagonal_mask(cu_seqlens: torch.Tensor, device: torch.device) -> torch.Tensor:
    """[seq, seq] boolean mask letting each token see only the tokens of its own window."""
    lengths = torch.diff(cu_seqlens.to(device=device, dtype=torch.long))
    window = torch.repeat_interleave(torch.arange(len(lengths), device=device), lengths)
    return window[:, None] == window[None, :]


@functools.cache
def _parameter_names(kernel: Callable[..., Any]) -> frozenset[str]:
    """The kernel's parameter names, read once (the attention function asks in every block of every forward)."""
    return frozenset(inspect.signature(kernel).parameters)


def _kernel_kwargs(kernel: Callable[..., Any], scaling: float | None, head_dim: int) -> dict[str, Any] | None:
    """Keyword arguments for this torch's `varlen_attn` (its signature changed between releases); None if it cannot
    apply `scaling`."""
    params = _parameter_names(kernel)
    kwargs: dict[str, Any] = {}
    if "is_causal" in params:
        kwargs["is_causal"] = False
    if scaling is not None and "scale" in params:
        kwargs["scale"] = scaling
    elif scaling is not None and not math.isclose(scaling, head_dim ** -0.5, rel_tol=1e-6):
        return None
    return kwargs


def vit_varlen_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    *,
    scaling: float | None = None,
    dropout: float = 0.0,
    cu_seq_lens_q: torch.Tensor | None = None,
    cu_seq_lens_k: torch.Tensor | None = None,
    max_length_q: Any = None,
    max_length_k: Any = None,
    **_: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function protocol for the vision blocks: q, k, v are [1, heads, seq, head_dim]; the
    output is [seq, heads, head_dim]. `cu_seq_lens_q` delimits the windows (or the images, in the full blocks)."""
    if attention_mask is not None or cu_seq_lens_q is None or query.shape[0] != 1:
        raise ValueError(f"{NAME} serves only the vision tower's windowed attention (batch 1, cu_seq_lens given)")
    kernel = varlen_kernel()
    kwargs = _kernel_kwargs(kernel, scaling, query.shape[-1]) if kernel is not None else None
    if query.is_cuda and kwargs is not None and dropout == 0.0:
        cu_q = cu_seq_lens_q.to(torch.int32)
        cu_k = cu_q if cu_seq_lens_k is None else cu_seq_lens_k.to(torch.int32)
        # [seq, heads, head_dim], made contiguous: a copy of a few MB a block, against a kernel's stride assumptions
        q, k, v = (tensor[0].transpose(0, 1).contiguous() for tensor in (query, key, value))
        output = kernel(q, k, v, cu_q, cu_k, int(max_length_q), int(max_length_k or max_length_q), **kwargs)
        return output, None
    mask = block_diagonal_mask(cu_seq_lens_q, query.device)
    output = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=dropout, scale=scaling)
    return output[0].transpose(0, 1), None


def _switched(forward: Callable[..., Any]) -> Callable[..., Any]:
    """The vision tower's forward, with its own config switched to NAME first (the LLM's config is left alone)."""

    def switched_forward(self: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        if self.config._attn_implementation != NAME:
            self.config._attn_implementation = NAME
        return forward(self, *args, **kwargs)

    switched_forward._codedance_vit_varlen = True  # type: ignore[attr-defined]
    return switched_forward


def install() -> None:
    """Register NAME and route Qwen2.5-VL's vision tower to it in this process; idempotent.

    The switch happens at the tower's first forward: from_pretrained sets every sub-config's implementation while it
    loads, and would undo an earlier one."""
    from transformers import AttentionInterface
    from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as qwen

    AttentionInterface.register(NAME, vit_varlen_attention)
    tower = qwen.Qwen2_5_VisionTransformerPretrainedModel
    if not getattr(tower.forward, "_codedance_vit_varlen", False):
        tower.forward = _switched(tower.forward)


def install_if_asked() -> bool:
    """install() when `codedance sft` asked for it (VIT_VARLEN_ENV=1), saying so in swift's log; True if it did."""
    if os.environ.get(VIT_VARLEN_ENV) != "1":
        return False
    if varlen_kernel() is None and torch.cuda.is_available():
        # the masked stand-in attends over all of a sample's patches at once: fine for tests, too big for real images
        print("codedance: vit_attention varlen needs torch.nn.attention.varlen (a newer torch); the ViT keeps one "
              "attention call a window", file=sys.stderr, flush=True)
        return False
    install()
    kernel = "torch varlen_attn" if varlen_kernel() is not None else "CPU: one masked SDPA call"
    print(f"{ROUTED} ({kernel})", file=sys.stderr, flush=True)
    return True
