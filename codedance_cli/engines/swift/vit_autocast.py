"""Run the vision tower under the language model's autocast when the weights are float32 masters.

ms-swift turns image pixels into embeddings in a forward *pre-hook* of the model (its template's post-encode), while
accelerate's mixed precision wraps only the model's `forward` in autocast. With `train.master_weights: float32`
(float32 weights, bf16 compute) the language model thus computes in bf16 but the ViT in plain float32: a probe inside
`swift sft` on CPU saw the vision attention get float32 inputs with autocast off, and the text attention autocast on.
That costs the ViT's share of the step at float32 speed, and torch's variable-length flash kernel (`vit_varlen.py`)
refuses float32 outright: the H200 benchmark's `fp32_master` row stopped with "FlashAttention only support fp16 and
bf16 data type" (docs/performance.md, fourth device run).

`install(dtype)` wraps the tower's forward in the autocast the rest of the model gets, and hands its outputs back in
the weights' dtype, so ms-swift merges them into the float32 text embeddings as before. `codedance sft` and
`codedance rl` ask for it through the environment (VIT_AUTOCAST_ENV) exactly when they pass float32 master weights
with a half-precision compute dtype (args.py, `vit_autocast_env`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import torch

from codedance_cli.engines.swift.args import VIT_AUTOCAST_ENV

HALF_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}
MARKER = "_codedance_vit_autocast"


def _in_dtype(value: Any, dtype: torch.dtype) -> Any:
    """`value` with its floating-point tensors in `dtype` (a tensor, a ModelOutput, a tuple of them, or left as is)."""
    if isinstance(value, torch.Tensor):
        return value.to(dtype) if value.is_floating_point() else value
    if isinstance(value, dict):  # transformers' ModelOutput is a dict whose items are also its attributes
        for key, item in list(value.items()):
            value[key] = _in_dtype(item, dtype)
        return value
    if type(value) is tuple:
        return tuple(_in_dtype(item, dtype) for item in value)
    return value


def under_autocast(forward: Callable[..., Any], dtype: torch.dtype) -> Callable[..., Any]:
    """The tower's forward under autocast to `dtype` (unless some caller already turned autocast on), its outputs
    back in the tower's own dtype."""

    def forward_under_autocast(self: torch.nn.Module, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        device_type = hidden_states.device.type
        if torch.is_autocast_enabled(device_type):
            return forward(self, hidden_states, *args, **kwargs)
        with torch.autocast(device_type, dtype=dtype):
            output = forward(self, hidden_states, *args, **kwargs)
        return _in_dtype(output, self.dtype)

    setattr(forward_under_autocast, MARKER, True)
    return forward_under_autocast


def install(dtype: torch.dtype) -> None:
    """Put Qwen2.5-VL's vision tower under autocast to `dtype` in this process; idempotent."""
    from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as qwen

    tower = qwen.Qwen2_5_VisionTransformerPretrainedModel
    if not getattr(tower.forward, MARKER, False):
        tower.forward = under_autocast(tower.forward, dtype)


def install_if_asked() -> bool:
    """install() when `codedance` asked for it (VIT_AUTOCAST_ENV names the compute dtype); True if it did."""
    name = os.environ.get(VIT_AUTOCAST_ENV)
    if not name:
        return False
    if name not in HALF_DTYPES:
        raise ValueError(f"{VIT_AUTOCAST_ENV}={name!r}: expected one of {', '.join(HALF_DTYPES)}")
    install(HALF_DTYPES[name])
    print(f"codedance: the vision tower runs under {name} autocast, as the language model does", file=sys.stderr, flush=True)
    return True
