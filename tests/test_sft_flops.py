"""benchmarks/sft_flops.py counts the matrices and attention windows the real Qwen2.5-VL-3B shape has."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from sft_flops import image_flops, sequence_flops, shape_of

TEXT = {"vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36,
        "num_attention_heads": 16, "num_key_value_heads": 2, "tie_word_embeddings": True}
VISION = {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "out_hidden_size": 2048,
          "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
          "fullatt_block_indexes": [7, 15, 23, 31], "in_chans": 3}


def _matrix_params(module) -> int:
    """Weights of the Linear / Conv layers under `module` (norms and biases cost no matrix FLOPs)."""
    import torch

    return sum(m.weight.numel() for m in module.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv3d)))


def test_parameter_counts_match_the_model() -> None:
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    config = Qwen2_5_VLConfig(text_config=TEXT, vision_config=VISION, tie_word_embeddings=True)
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration(config)
    shape = shape_of(config.to_dict())
    visual = model.model.visual
    assert shape.llm_params == _matrix_params(model.model.language_model) + model.lm_head.weight.numel()
    assert shape.merger_params == _matrix_params(visual.merger)
    assert shape.vit_params == _matrix_params(visual) - _matrix_params(visual.merger)
    assert shape.full_attention_blocks == 4 and shape.window_patches == 8
    assert 3.74e9 < sum(p.numel() for p in model.parameters()) < 3.76e9  # Qwen2.5-VL-3B's 3.75B


@pytest.mark.parametrize("grid", [[1, 16, 16], [1, 70, 72], [1, 30, 46]])
def test_window_attention_matches_transformers_windows(grid: list[int]) -> None:
    import torch

    vision_utils = pytest.importorskip("transformers.vision_utils")
    if not hasattr(vision_utils, "get_vision_window_index"):
        pytest.skip("this transformers has no get_vision_window_index")
    _, cu = vision_utils.get_vision_window_index(torch.tensor([grid]), 2, 112, 14)
    windows = [b - a for a, b in zip(cu.tolist(), cu.tolist()[1:])]  # patches a window
    shape = shape_of({"text_config": TEXT, "vision_config": VISION})
    patches = grid[0] * grid[1] * grid[2]
    frozen = image_flops(shape, grid, vit_trained=False, merger_trained=False)
    attention = frozen - 2.0 * shape.vit_params * patches - 2.0 * shape.merger_params * patches / 4
    expected = 4.0 * 1280 * (28 * sum(n * n for n in windows) + 4 * patches * patches)
    assert attention == pytest.approx(expected)


def test_sequence_flops_is_six_n_plus_attention() -> None:
    shape = shape_of({"text_config": TEXT, "vision_config": VISION})
    assert sequence_flops(shape, 1000) == 6 * shape.llm_params * 1000 + 12 * 36 * 2048 * 1000**2
