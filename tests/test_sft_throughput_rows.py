"""benchmarks/sft_throughput.py's explaining rows (issue 20): the profile, and the varlen rows end to end.

The profiler runs for real on CPU; the benchmark runs end to end through `swift sft` with the recipe's
`train.vit_attention: varlen` and the profile switched on (the attention itself: tests/test_swift_vit_varlen.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from codedance_cli.engines.swift.vit_varlen import ROUTED

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
REPO = BENCHMARKS.parent


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


def test_benchmark_runs_the_vit_attention_and_profile_rows_through_swift(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Both switches reach `swift sft` (the plug-in says it routed the ViT); the varlen row's losses equal the baseline's."""
    out = tmp_path / "out"
    env = {**os.environ, "CODEDANCE_TINY_MODEL": str(tiny_model_dir)}
    done = subprocess.run([sys.executable, str(BENCHMARKS / "sft_throughput.py"), "--smoke", "--work", str(tmp_path),
                           "--out", str(out), "--rows", "baseline,vit_per_window,profile"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = {row["row"]: row for row in json.loads((out / "sft_throughput.json").read_text())["rows"]}
    assert rows["vit_per_window"]["losses"] == pytest.approx(rows["baseline"]["losses"], abs=1e-4)
    assert ROUTED in (tmp_path / "rows" / "baseline" / "swift.log").read_text()  # the 7B recipe's vit_attention: varlen
    assert ROUTED not in (tmp_path / "rows" / "vit_per_window" / "swift.log").read_text()
    assert rows["profile"]["profile"]["ranges"]["codedance::vit_forward"]["calls_per_step"] > 0
    assert rows["profile"]["profile"]["attention_calls_per_step"] > 0
    table = (out / "sft_throughput.md").read_text()
    assert "loss Δ vs baseline" in table and "profile of profile:" in table
