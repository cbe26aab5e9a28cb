"""verl's step metrics read back: the console line a step, and rl_summary.json from its file logger."""

from __future__ import annotations

import json
from pathlib import Path

from codedance_cli.engines.verl.metrics import parse_step_line, read_metrics, step_text, summarize_verl_metrics

# The head of a real step line from the 2026-12-02 H200 run (verl 0.9.1), plus our manager's stats.
STEP_LINE = (
    "\x1b[36m(TaskRunner pid=6382)\x1b[0m step:2 - global_seqlen/min:36488 - actor/entropy:0.030897896736860275 - "
    "actor/pg_loss:np.float64(0.0) - actor/grad_norm:np.float64(0.0) - actor/lr:np.float64(1e-05) - "
    "critic/score/mean:-0.20000001788139343 - critic/advantages/max:0.0 - critic/advantages/min:0.0 - "
    "num_turns/mean:np.float64(2.0) - timing_s/codedance/reward_std:0.0 - timing_s/codedance/equal_groups:1.0 - "
    "timing_s/codedance/tool_calls:0.0 - timing_s/step:18.632922069000188 - perf/throughput:1958.2543127095196\n"
)


def test_a_step_line_becomes_numbers_and_one_short_line() -> None:
    metrics = parse_step_line(STEP_LINE)
    assert metrics is not None
    assert metrics["step"] == 2 and metrics["actor/lr"] == 1e-05 and metrics["critic/score/mean"] == -0.20000001788139343
    assert metrics["num_turns/mean"] == 2.0 and metrics["perf/throughput"] == 1958.2543127095196
    assert step_text(metrics, 2) == (
        "verl: step 2/2, reward -0.200 ± 0.000, equal groups 100 %, tool calls 0.00/rollout, grad norm 0, 18.6 s"
    )
    failing = parse_step_line(STEP_LINE.replace(
        "timing_s/codedance/tool_calls:0.0", "timing_s/codedance/tool_calls:0.5 - timing_s/codedance/tool_failed:0.65 - "
        "timing_s/codedance/failed/NameError:0.4 - timing_s/codedance/failed/SyntaxError:0.25"))
    assert "tool calls 0.50/rollout, failed 65 % (most: NameError 40 %)" in step_text(failing, 2)
    assert parse_step_line("(TaskRunner pid=1) Training Progress: 50%") is None
    assert parse_step_line("'Final validation metrics: None'") is None


def test_summary_from_the_file_logger_says_when_nothing_was_learnt(tmp_path: Path) -> None:
    path = tmp_path / "verl_metrics.jsonl"
    flat = {"critic/score/mean": -0.2, "actor/grad_norm": 0.0, "critic/advantages/max": 0.0, "critic/advantages/min": 0.0}
    learning = {"critic/score/mean": 0.4, "actor/grad_norm": 0.31, "timing_s/codedance/reward_std": 0.5,
                "timing_s/codedance/equal_groups": 0.25}
    path.write_text(json.dumps({"step": 1, "data": flat}) + "\n" + json.dumps({"step": 2, "data": flat}) + "\n{torn")
    assert [entry["step"] for entry in read_metrics(path)] == [1, 2]
    idle = summarize_verl_metrics(path)
    assert idle is not None and not idle.trained and idle.mean_frac_reward_zero_std == 1.0
    assert idle.lines()[-1].startswith("NO LEARNING SIGNAL")
    path.write_text(json.dumps({"step": 1, "data": flat}) + "\n" + json.dumps({"step": 2, "data": learning}) + "\n")
    trained = summarize_verl_metrics(path)
    assert trained is not None and trained.trained
    assert (trained.steps, trained.last_reward, trained.last_reward_std, trained.max_grad_norm) == (2, 0.4, 0.5, 0.31)
    assert trained.mean_frac_reward_zero_std == (1.0 + 0.25) / 2
    assert summarize_verl_metrics(tmp_path / "missing.jsonl") is None
    calls = {"timing_s/codedance/tool_calls": 0.5, "timing_s/codedance/tool_failed": 0.6,
             "timing_s/codedance/failed/NameError": 0.4, "timing_s/codedance/failed/SyntaxError": 0.2}
    path.write_text(json.dumps({"step": 1, "data": {**learning, **calls}}) + "\n")
    tools = summarize_verl_metrics(path).tools  # what the run's calls did, in rl_summary.json and its last lines
    assert tools is not None and (tools.calls_per_rollout, tools.failed_share) == (0.5, 0.6)
    assert list(tools.failure_kinds) == ["NameError", "SyntaxError"]
    assert "failed: 60 % (most: NameError, 40 % of calls)" in tools.line()
