"""`train.vit_attention: varlen`: Qwen2.5-VL's vision windows in one attention call a block (engines/swift/vit_varlen.py).

The GPU kernel (torch's varlen FlashAttention) cannot run here; its CPU stand-in, one SDPA call with a block-diagonal
mask, goes through the same plumbing (registration, the vision config switched and the LLM's left alone, the
cumulative window lengths), and is checked against transformers' own one-call-per-window loop on the tiny model.
On the H200 the switch made `codedance sft` 1.37x faster (docs/performance.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from codedance_cli.engines.swift.args import VIT_VARLEN_ENV
from codedance_cli.engines.swift.sft_command import swift_env
from codedance_cli.recipes.loader import load_recipe

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def vit_attention(monkeypatch):
    """engines/swift/vit_varlen.py, with the tower's forward and the attention registry restored afterwards."""
    from transformers import AttentionInterface
    from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as qwen

    monkeypatch.setattr(qwen.Qwen2_5_VisionTransformerPretrainedModel, "forward",
                        qwen.Qwen2_5_VisionTransformerPretrainedModel.forward)
    monkeypatch.setattr(AttentionInterface, "_global_mapping", dict(AttentionInterface._global_mapping))
    from codedance_cli.engines.swift import vit_varlen

    return vit_varlen


def _vision_inputs(config) -> tuple[torch.Tensor, torch.Tensor]:
    """Random patches for two images of different shapes (16 x 16 and 8 x 24 patches: 4 and 3 windows)."""
    grid = torch.tensor([[1, 16, 16], [1, 8, 24]])
    vision = config.vision_config
    width = vision.in_channels * vision.temporal_patch_size * vision.patch_size ** 2
    return torch.randn(int(grid.prod(dim=1).sum()), width, generator=torch.Generator().manual_seed(0)), grid


def test_one_call_a_block_matches_the_per_window_loop(tiny_model_dir: Path, vit_attention) -> None:
    from transformers import Qwen2_5_VLForConditionalGeneration

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(tiny_model_dir), attn_implementation="sdpa",
                                                               dtype=torch.float32).eval()
    tower = model.model.visual
    pixels, grid = _vision_inputs(model.config)
    with torch.no_grad():
        per_window = tower(pixels, grid_thw=grid).pooler_output
        calls: list[int] = []
        original = vit_attention.vit_varlen_attention

        def counted(*args, **kwargs):
            calls.append(int(kwargs["cu_seq_lens_q"].numel()) - 1)
            return original(*args, **kwargs)

        vit_attention.install()
        from transformers import AttentionInterface

        AttentionInterface.register(vit_attention.NAME, counted)
        one_call = tower(pixels, grid_thw=grid).pooler_output
    assert tower.config._attn_implementation == vit_attention.NAME
    assert model.config.text_config._attn_implementation == "sdpa"  # the LLM keeps SDPA
    assert len(calls) == model.config.vision_config.depth  # one call a block ...
    assert max(calls) == 4 + 3  # ... holding every window of both images (the full-attention blocks: 2 images)
    torch.testing.assert_close(one_call, per_window, rtol=1e-5, atol=1e-5)


def test_the_language_model_never_reaches_the_vit_attention(vit_attention) -> None:
    q = torch.zeros(2, 4, 8, 16)
    with pytest.raises(ValueError, match="vision tower"):
        vit_attention.vit_varlen_attention(None, q, q, q, None, cu_seq_lens_q=torch.tensor([0, 8]))
    with pytest.raises(ValueError, match="vision tower"):
        vit_attention.vit_varlen_attention(None, q[:1], q[:1], q[:1], torch.ones(8, 8, dtype=torch.bool))


def test_kernel_arguments_follow_the_torch_release(vit_attention) -> None:
    def with_scale(q, k, v, cu_q, cu_k, max_q, max_k, *, scale=None): ...
    def with_causal(q, k, v, cu_q, cu_k, max_q, max_k, is_causal=False): ...

    assert vit_attention._kernel_kwargs(with_scale, 0.1, 64) == {"scale": 0.1}
    assert vit_attention._kernel_kwargs(with_causal, 64 ** -0.5, 64) == {"is_causal": False}
    assert vit_attention._kernel_kwargs(with_causal, 0.1, 64) is None  # cannot scale: the masked-SDPA path instead




def test_the_recipe_switch_reaches_swift_through_the_environment() -> None:
    recipe = load_recipe(REPO / "recipes/qwen2.5-vl-7b/sft.yaml", expect_stage="sft")
    assert swift_env(recipe).get(VIT_VARLEN_ENV) == ("1" if recipe.train.vit_attention == "varlen" else None)
    plain = recipe.model_copy(update={"train": recipe.train.model_copy(update={"vit_attention": "model"})})
    assert VIT_VARLEN_ENV not in swift_env(plain)


def test_the_rl_recipe_switch_reaches_swift_rlhf(tmp_path: Path) -> None:
    from codedance_cli.engines.rl_files import RunFiles
    from codedance_cli.engines.swift import grpo_command

    files = RunFiles(tmp_path)
    recipe = load_recipe(REPO / "recipes/nano/rl.yaml", ["swift.vit_attention=varlen"], expect_stage="rl")
    assert grpo_command.swift_env(recipe, files)[VIT_VARLEN_ENV] == "1"
    default = load_recipe(REPO / "recipes/nano/rl.yaml", expect_stage="rl")
    assert VIT_VARLEN_ENV not in grpo_command.swift_env(default, files)


def test_install_if_asked_reads_the_environment(monkeypatch, vit_attention) -> None:
    monkeypatch.delenv(VIT_VARLEN_ENV, raising=False)
    assert vit_attention.install_if_asked() is False
    monkeypatch.setenv(VIT_VARLEN_ENV, "1")
    assert vit_attention.install_if_asked() is True
    from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as qwen

    assert getattr(qwen.Qwen2_5_VisionTransformerPretrainedModel.forward, "_codedance_vit_varlen", False)
