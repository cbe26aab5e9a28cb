"""Float32 master weights: the ViT runs under the language model's autocast (engines/swift/vit_autocast.py).

ms-swift runs the vision tower in a pre-hook, outside the autocast accelerate gives the model's forward, so with
float32 weights and bf16 compute the ViT computed in float32 (and torch's flash varlen kernel refused it on the H200).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from codedance_cli.engines.swift.args import VIT_AUTOCAST_ENV, vit_autocast_env
from codedance_cli.engines.swift.sft_command import swift_env
from codedance_cli.recipes.loader import load_recipe

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def vit_autocast(monkeypatch):
    """engines/swift/vit_autocast.py, with the tower's forward restored afterwards."""
    from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as qwen

    monkeypatch.setattr(qwen.Qwen2_5_VisionTransformerPretrainedModel, "forward",
                        qwen.Qwen2_5_VisionTransformerPretrainedModel.forward)
    from codedance_cli.engines.swift import vit_autocast

    return vit_autocast


def _tower_and_inputs(tiny_model_dir: Path):
    from transformers import Qwen2_5_VLForConditionalGeneration

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(tiny_model_dir), attn_implementation="sdpa",
                                                               dtype=torch.float32).eval()
    grid = torch.tensor([[1, 16, 16]])
    vision = model.config.vision_config
    width = vision.in_channels * vision.temporal_patch_size * vision.patch_size ** 2
    pixels = torch.randn(int(grid.prod()), width, generator=torch.Generator().manual_seed(0))
    return model.model.visual, pixels, grid


def _attention_input_dtypes(tower: torch.nn.Module) -> list[torch.dtype]:
    """The dtype of every vision attention's q/k/v projection output, recorded by forward hooks."""
    seen: list[torch.dtype] = []
    for block in tower.blocks:
        block.attn.qkv.register_forward_hook(lambda _module, _inputs, output: seen.append(output.dtype))
    return seen


def test_float32_tower_computes_in_bf16_and_hands_back_float32(tiny_model_dir: Path, vit_autocast) -> None:
    tower, pixels, grid = _tower_and_inputs(tiny_model_dir)
    seen = _attention_input_dtypes(tower)
    with torch.no_grad():
        before = tower(pixels, grid_thw=grid).pooler_output
        assert set(seen) == {torch.float32}  # what ms-swift's pre-hook did with float32 master weights
        seen.clear()
        vit_autocast.install(torch.bfloat16)
        after = tower(pixels, grid_thw=grid).pooler_output
    assert set(seen) == {torch.bfloat16}
    assert after.dtype == torch.float32  # merged into the float32 text embeddings as before
    torch.testing.assert_close(after, before, rtol=0.05, atol=0.05)  # bf16 rounding, not another computation


def test_an_autocast_already_on_is_left_alone(tiny_model_dir: Path, vit_autocast) -> None:
    tower, pixels, grid = _tower_and_inputs(tiny_model_dir)
    vit_autocast.install(torch.float16)
    seen = _attention_input_dtypes(tower)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        output = tower(pixels, grid_thw=grid).pooler_output
    assert set(seen) == {torch.bfloat16}  # the caller's autocast, not ours
    assert output.dtype == torch.bfloat16  # and its outputs untouched


def test_install_if_asked_reads_the_environment(monkeypatch, vit_autocast) -> None:
    from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as qwen

    monkeypatch.delenv(VIT_AUTOCAST_ENV, raising=False)
    assert vit_autocast.install_if_asked() is False
    monkeypatch.setenv(VIT_AUTOCAST_ENV, "float64")
    with pytest.raises(ValueError, match="CODEDANCE_VIT_AUTOCAST='float64'"):
        vit_autocast.install_if_asked()
    monkeypatch.setenv(VIT_AUTOCAST_ENV, "bfloat16")
    assert vit_autocast.install_if_asked() is True
    wrapped = qwen.Qwen2_5_VisionTransformerPretrainedModel.forward
    vit_autocast.install_if_asked()
    assert qwen.Qwen2_5_VisionTransformerPretrainedModel.forward is wrapped  # idempotent


def test_only_float32_masters_with_half_compute_ask_for_it() -> None:
    assert vit_autocast_env("bfloat16", "float32") == {VIT_AUTOCAST_ENV: "bfloat16"}
    assert vit_autocast_env("float16", "float32") == {VIT_AUTOCAST_ENV: "float16"}
    assert vit_autocast_env("bfloat16", "model") == {}  # bf16 weights: the ViT computes in bf16 anyway
    assert vit_autocast_env("float32", "float32") == {}  # plain float32 training: nothing to autocast to


def test_the_recipes_reach_swift_through_the_environment(tmp_path: Path) -> None:
    from codedance_cli.engines.rl_files import RunFiles
    from codedance_cli.engines.swift import grpo_command

    sft = load_recipe(REPO / "recipes/nano/sft.yaml", ["model.dtype=bfloat16", "train.master_weights=float32"],
                      expect_stage="sft")
    assert swift_env(sft)[VIT_AUTOCAST_ENV] == "bfloat16"
    assert VIT_AUTOCAST_ENV not in swift_env(load_recipe(REPO / "recipes/nano/sft.yaml", expect_stage="sft"))
    rl = load_recipe(REPO / "recipes/nano/rl.yaml", ["model.dtype=bfloat16"], expect_stage="rl")
    assert rl.train.master_weights == "float32"  # the RL default
    assert grpo_command.swift_env(rl, RunFiles(tmp_path))[VIT_AUTOCAST_ENV] == "bfloat16"
