"""benchmarks/sft_throughput.py's explaining rows (issue 20): the ViT's windows in one attention call, and the profile.

The GPU kernel (torch's varlen FlashAttention) cannot run here; its CPU stand-in, one SDPA call with a block-diagonal
mask, goes through the same plumbing (registration, the vision config switched and the LLM's left alone, the
cumulative window lengths), and is checked against transformers' own one-call-per-window loop on the tiny model. The
profiler runs for real on CPU; the benchmark runs end to end through `swift sft` with both switched on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
REPO = BENCHMARKS.parent


@pytest.fixture
def vit_attention(monkeypatch):
    """benchmarks/sft_vit_attention.py, with the tower's forward and the attention registry restored afterwards."""
    from transformers import AttentionInterface
    from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as qwen

    monkeypatch.setattr(qwen.Qwen2_5_VisionTransformerPretrainedModel, "forward",
                        qwen.Qwen2_5_VisionTransformerPretrainedModel.forward)
    monkeypatch.setattr(AttentionInterface, "_global_mapping", dict(AttentionInterface._global_mapping))
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import sft_vit_attention

    return sft_vit_attention


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


class _Toy(torch.nn.Module):
    """Modules named as in Qwen2.5-VL, so the profile's ranges find them."""

    def __init__(self) -> None:
        super().__init__()
        self.visual = torch.nn.Linear(16, 16)
        self.language_model = torch.nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.visual(x).view(1, 2, -1, 8)
        attended = torch.nn.functional.scaled_dot_product_attention(q, q, q).reshape(x.shape)
        return self.language_model(attended)


def test_profiler_reports_ranges_attention_calls_and_top_ops(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from sft_profile import StepProfiler, parse_window

    model = _Toy()
    optimizer = torch.optim.AdamW(model.parameters())
    profiler = StepProfiler(*parse_window("1:2"), tmp_path)
    for step in range(1, 5):
        profiler.on_step(step, model)
        for _ in range(3):  # micro-batches
            model(torch.randn(8, 16)).square().mean().backward()
        optimizer.step()
        optimizer.zero_grad()
    summary = json.loads((tmp_path / "profile.json").read_text())
    assert summary["steps"] == 2 and summary["device"] is False and summary["gpu_busy_share"] is None
    assert summary["ranges"]["codedance::vit_forward"]["calls_per_step"] == 3
    assert summary["ranges"]["codedance::llm_forward"]["calls_per_step"] == 3
    assert any(name.startswith("Optimizer.step#AdamW") for name in summary["ranges"])
    assert summary["attention_calls_per_step"] == 3
    assert summary["top_ops"] and all(op["host_ms_per_step"] >= 0 for op in summary["top_ops"])
    assert "codedance::vit_forward" in (tmp_path / "profile.md").read_text()
    with pytest.raises(ValueError, match="W:N"):
        parse_window("2")


def test_benchmark_runs_the_varlen_and_profile_rows_through_swift(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Both switches reach the probe inside `swift sft`; the varlen row's losses equal the baseline's."""
    out = tmp_path / "out"
    env = {**os.environ, "CODEDANCE_TINY_MODEL": str(tiny_model_dir)}
    done = subprocess.run([sys.executable, str(BENCHMARKS / "sft_throughput.py"), "--smoke", "--work", str(tmp_path),
                           "--out", str(out), "--rows", "baseline,varlen,profile"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = {row["row"]: row for row in json.loads((out / "sft_throughput.json").read_text())["rows"]}
    assert rows["varlen"]["losses"] == pytest.approx(rows["baseline"]["losses"], abs=1e-4)
    assert rows["profile"]["profile"]["ranges"]["codedance::vit_forward"]["calls_per_step"] > 0
    assert rows["profile"]["profile"]["attention_calls_per_step"] > 0
    table = (out / "sft_throughput.md").read_text()
    assert "loss Δ vs baseline" in table and "profile of profile:" in table
