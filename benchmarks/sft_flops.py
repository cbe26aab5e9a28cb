"""Model FLOPs of SFT steps of a Qwen2.5-VL-shaped model, for MFU (useful work per second / the GPU's bf16 peak).

"Model FLOPs" as PaLM counts them (appendix B): what the model needs, not what the GPU did, so activation
recomputation (gradient checkpointing) and padding tokens count nothing, and a better kernel cannot raise MFU by
doing more work. Matrix multiplies are 2 FLOPs per multiply-add; training is forward + backward = 3x forward.

- LLM, per real token of a sequence of s tokens: 6·N_llm + 12·L·d·s. N_llm counts the matrices a token goes
  through (q, k, v, o and the three MLP matrices of each of the L layers, and the LM head; the embedding lookup is
  free); 12·L·d·s is attention's two s-long products (scores, weighted sum), forward and backward, counted over the
  whole sequence as PaLM does (a causal kernel skips about half). d = heads x head dim.
- ViT, per patch: 2·N_vit forward when frozen (nothing before it needs a gradient, so no backward), 6·N_vit when
  trained; attention 4·d_v·w forward (x3 trained), w = the patches it attends to: its 8x8-patch window (112 px) in
  windowed blocks, the whole image in full-attention blocks. N_vit = patch embedding + each block's qkv, proj and
  three MLP matrices.
- Merger (the vision-language projector, 2x2 patches -> one LLM token): 6·N_merger per LLM image token when
  trained, 2·N_merger frozen.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMULA = ("model FLOPs (PaLM): LLM 6*N_llm*tokens + 12*L*d*s per token of an s-token sequence; ViT 2*N_vit per patch "
           "(frozen: forward only; 6* if trained) + windowed/full attention 4*d_v*w per patch; merger 6*N_merger per image "
           "token; no recomputation, no padding")


@dataclass(frozen=True)
class Shape:
    """The sizes FLOPs depend on, read from a Qwen2.5-VL (or Qwen2) config.json."""

    layers: int
    hidden: int
    attention_width: int  # heads x head dim
    llm_params: int  # matrices a token goes through, LM head included
    vit_depth: int = 0
    vit_hidden: int = 0
    vit_params: int = 0  # patch embedding + blocks, without the merger
    merger_params: int = 0
    full_attention_blocks: int = 0
    window_patches: int = 8  # window side in patches (window_size / patch_size)
    merge: int = 2


def llm_matrices(text: dict[str, Any]) -> tuple[int, int]:
    """(attention width, parameters of the LLM's matrices incl. the LM head) from a text config."""
    d, f, layers = text["hidden_size"], text["intermediate_size"], text["num_hidden_layers"]
    heads = text["num_attention_heads"]
    head_dim = text.get("head_dim") or d // heads
    kv_width = text.get("num_key_value_heads", heads) * head_dim
    per_layer = d * heads * head_dim * 2 + d * kv_width * 2 + 3 * d * f  # q, o, k, v, gate/up/down
    return heads * head_dim, layers * per_layer + text["vocab_size"] * d


def shape_of(config: dict[str, Any]) -> Shape:
    """The Shape of a config.json dict (Qwen2.5-VL: text_config + vision_config; Qwen2: the top level)."""
    text = config.get("text_config") or config
    width, llm = llm_matrices(text)
    vision = config.get("vision_config")
    if not vision:
        return Shape(text["num_hidden_layers"], text["hidden_size"], width, llm)
    dv, fv, depth = vision["hidden_size"], vision["intermediate_size"], vision["depth"]
    patch_in = vision.get("in_chans", vision.get("in_channels", 3)) * vision["temporal_patch_size"] * vision["patch_size"] ** 2
    merge = vision["spatial_merge_size"]
    merger_in = dv * merge**2
    return Shape(
        layers=text["num_hidden_layers"], hidden=text["hidden_size"], attention_width=width, llm_params=llm,
        vit_depth=depth, vit_hidden=dv, vit_params=patch_in * dv + depth * (4 * dv * dv + 3 * dv * fv),
        merger_params=merger_in * merger_in + merger_in * vision["out_hidden_size"],
        full_attention_blocks=len(vision.get("fullatt_block_indexes") or []),
        window_patches=vision.get("window_size", 112) // vision["patch_size"], merge=merge,
    )


def load_shape(model_dir: str | Path) -> Shape:
    return shape_of(json.loads((Path(model_dir) / "config.json").read_text()))


def sequence_flops(shape: Shape, length: int) -> float:
    """Training FLOPs of one LLM sequence of `length` real tokens (matrices + attention)."""
    return 6.0 * shape.llm_params * length + 12.0 * shape.layers * shape.attention_width * length * length


def _window_sides(cells: int, window: int) -> list[int]:
    """Window sides along one axis of `cells` merged cells, `window` cells a window (the last one shorter)."""
    return [min(window, cells - start) for start in range(0, cells, window)]


def image_flops(shape: Shape, grid: list[int], vit_trained: bool = False, merger_trained: bool = True) -> float:
    """FLOPs of one image of grid (t, h, w) patches through the ViT and merger."""
    t, h, w = grid
    patches = t * h * w
    window_cells = max(1, shape.window_patches // shape.merge)
    m2 = shape.merge**2  # a merged cell is merge x merge patches
    windowed = t * sum((m2 * a * b) ** 2 for a in _window_sides(h // shape.merge, window_cells)
                       for b in _window_sides(w // shape.merge, window_cells))
    full = t * (h * w) ** 2
    blocks_windowed = shape.vit_depth - shape.full_attention_blocks
    attention = 4.0 * shape.vit_hidden * (blocks_windowed * windowed + shape.full_attention_blocks * full)
    vit = 2.0 * shape.vit_params * patches + attention
    merger = 2.0 * shape.merger_params * patches / m2
    return vit * (3 if vit_trained else 1) + merger * (3 if merger_trained else 1)


def micro_batch_flops(shape: Shape, counts: dict[str, Any], vit_trained: bool = False, merger_trained: bool = True) -> float:
    """FLOPs of one micro-batch as benchmarks/sft_probe.py records it (lengths + image grids)."""
    text = sum(sequence_flops(shape, n) for n in counts["lengths"])
    return text + sum(image_flops(shape, grid, vit_trained, merger_trained) for grid in counts.get("grids", []))
