"""What a verl run reports per step, read back for people: one console line a step and the run summary.

verl prints each step as one line of a few hundred `key:value` pairs, and its `file` logger writes the same
metrics as JSON lines (`{"step": N, "data": {...}}`) to VERL_FILE_LOGGER_PATH; `codedance rl` turns on that logger
and reads it into `rl_summary.json`. Reward spread, equal groups and tool calls are not verl metrics: our agent loop
manager (`bat.py`) adds them per batch under `timing_s/codedance/...`, the one dict verl copies from a generated
batch into the step's metrics.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from codedance_cli.common.jsonl import read_records
from codedance_cli.engines.rl_summary import RlSummary, ToolCallStats

STATS_PREFIX = "codedance/"  # keys our manager adds to the batch's timing dict
STAT_KEY = "timing_s/" + STATS_PREFIX  # ... as they appear among verl's step metrics
FAILED_KIND = "failed/"  # codedance/failed/<kind>: the share of all calls that failed with that kind
_PAIR = re.compile(r"([\w/.@-]+):(?:np\.\w+\()?(-?(?:\d+(?:\.\d*)?(?:e[+-]?\d+)?|nan|inf))\)?")
_STEP = re.compile(r"\bstep:(\d+) - ")


def parse_step_line(line: str) -> dict[str, float] | None:
    """verl's console step line (`step:3 - actor/grad_norm:np.float64(0.1) - ...`) as numbers; None for other lines."""
    match = _STEP.search(line)
    if match is None:
        return None
    metrics = {key: float(value) for key, value in _PAIR.findall(line[match.end():])}
    metrics["step"] = float(match.group(1))
    return metrics


def step_text(metrics: dict[str, float], total_steps: int | None) -> str:
    """One console line for a step: reward mean ± spread, equal groups, tool calls, gradient, seconds."""
    step = int(metrics.get("step", 0))
    parts = [f"verl: step {step}/{total_steps}" if total_steps else f"verl: step {step}"]
    if "critic/score/mean" in metrics:
        spread = metrics.get(STAT_KEY + "reward_std")
        parts.append(f"reward {metrics['critic/score/mean']:.3f}" + (f" ± {spread:.3f}" if spread is not None else ""))
    if (equal := metrics.get(STAT_KEY + "equal_groups")) is not None:
        parts.append(f"equal groups {100 * equal:.0f} %")
    if (calls := metrics.get(STAT_KEY + "tool_calls")) is not None:
        parts.append(f"tool calls {calls:.2f}/rollout")
    if calls and (failed := metrics.get(STAT_KEY + "tool_failed")) is not None:
        kinds = failure_shares(metrics)
        top = max(kinds, key=kinds.__getitem__) if kinds else None
        parts.append(f"failed {100 * failed:.0f} %" + (f" (most: {top} {100 * kinds[top]:.0f} %)" if top else ""))
    if "actor/grad_norm" in metrics:
        parts.append(f"grad norm {metrics['actor/grad_norm']:.3g}")
    if "timing_s/step" in metrics:
        parts.append(f"{metrics['timing_s/step']:.1f} s")
    return ", ".join(parts)


def failure_shares(metrics: dict[str, Any]) -> dict[str, float]:
    """One step's share of calls per failure kind (`codedance/failed/<kind>`), by kind."""
    prefix = STAT_KEY + FAILED_KIND
    return {key.removeprefix(prefix): float(share) for key, share in metrics.items() if key.startswith(prefix)}


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """verl's file-logger records, flattened to {"step": N, **metrics}; a torn or foreign line is skipped."""
    return [{"step": record.get("step"), **record["data"]} for record in read_records(path) if isinstance(record.get("data"), dict)]


def summarize_verl_metrics(path: Path) -> RlSummary | None:
    """The run summary from verl's metrics file; None when no training step was logged."""
    steps = read_metrics(path)
    summary = RlSummary.from_steps(
        steps, reward="critic/score/mean", grad_norm="actor/grad_norm",
        reward_std=lambda entry: float(entry.get(STAT_KEY + "reward_std", 0.0)), equal_groups=_equal_groups,
    )
    if summary is not None:
        summary.tools = tool_stats(steps)
    return summary


def tool_stats(steps: list[dict[str, Any]]) -> ToolCallStats | None:
    """Our manager's per-step tool statistics, averaged over the steps that have them."""
    steps = [entry for entry in steps if STAT_KEY + "tool_calls" in entry]
    if not steps:
        return None
    kinds: dict[str, float] = {}
    for entry in steps:
        for kind, share in failure_shares(entry).items():
            kinds[kind] = kinds.get(kind, 0.0) + share / len(steps)

    def mean(key: str) -> float:
        return sum(float(entry.get(STAT_KEY + key, 0.0)) for entry in steps) / len(steps)

    return ToolCallStats(calls_per_rollout=mean("tool_calls"), failed_share=mean("tool_failed"),
                         failure_kinds=dict(sorted(kinds.items(), key=lambda item: -item[1])))


def _equal_groups(entry: dict[str, Any]) -> float:
    """Our manager's share of equal groups; without it, a step whose advantages are all zero had only equal groups."""
    if (STAT_KEY + "equal_groups") in entry:
        return float(entry[STAT_KEY + "equal_groups"])
    flat = float(entry.get("critic/advantages/max", 0.0)) == 0.0 == float(entry.get("critic/advantages/min", 0.0))
    return 1.0 if flat else 0.0
