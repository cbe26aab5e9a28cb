"""Reward mean, reward std and rollout accuracy over GRPO steps, one line per reward variant (gpu_rl_check.sh output).

    python scripts/plot_rl_curves.py OUT_FOLDER docs/rl_curves.png

OUT_FOLDER is the `out/` folder of an unpacked gpu_rl.tar.gz: it holds rl_<variant>_logging.jsonl (ms-swift's
per-step log) and rl_<variant>_rewards.jsonl.gz (our reward's per-rollout terms). Also prints the table of steps.
"""

from __future__ import annotations

import gzip
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_rewards(folder: Path, variant: str) -> list[dict]:
    """Our reward's per-rollout records of one variant (read once, for the curves and the per-family table)."""
    with gzip.open(folder / f"rl_{variant}_rewards.jsonl.gz", "rt") as handle:
        return [json.loads(line) for line in handle]


def variant_curves(folder: Path, variant: str, rewards: list[dict]) -> dict[str, list[float]]:
    """Per step: ms-swift's reward mean and std, and the share of rollouts our reward scored correct."""
    steps = [json.loads(line) for line in (folder / f"rl_{variant}_logging.jsonl").read_text().splitlines()]
    steps = [entry for entry in steps if "reward" in entry]
    accuracy: dict[int, list[float]] = defaultdict(list)
    for entry in rewards:
        accuracy[entry["step"]].append(entry["accuracy"])
    by_step = [sum(values) / len(values) for _, values in sorted(accuracy.items())]
    return {
        "reward mean": [entry["reward"] for entry in steps],
        "reward std": [entry["reward_std"] for entry in steps],
        "rollout accuracy": by_step[: len(steps)],
    }


class FamilyTrend(NamedTuple):
    """One task family's rollouts at the start and the end of a run."""

    first_accuracy: float
    last_accuracy: float
    first_calls: float | None  # tool calls a rollout (None: a reward log without the field)
    last_calls: float | None
    rollouts: int


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def family_trends(rewards: list[dict], window: int = 5) -> dict[str, FamilyTrend]:
    """Per task family: rollout accuracy and tool calls a rollout over the first and the last `window` steps.

    A family whose rollouts are all wrong (or all right) gives GRPO no gradient, whatever the reward: this says which
    families the run could learn from, and whether their behaviour moved (calls) when their accuracy did not. Reward
    logs written before the `family` field have none (an empty dict)."""
    by_family: dict[str, dict[int, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for entry in rewards:
        if entry.get("family"):
            by_family[entry["family"]][entry["step"]].append(entry)
    table = {}
    for family, steps in sorted(by_family.items()):
        first = [entry for step in sorted(steps)[:window] for entry in steps[step]]
        last = [entry for step in sorted(steps)[-window:] for entry in steps[step]]
        has_calls = all("tool_calls" in entry for entry in first + last)
        table[family] = FamilyTrend(
            _mean([entry["accuracy"] for entry in first]), _mean([entry["accuracy"] for entry in last]),
            _mean([entry["tool_calls"] for entry in first]) if has_calls else None,
            _mean([entry["tool_calls"] for entry in last]) if has_calls else None,
            sum(len(entries) for entries in steps.values()),
        )
    return table


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: plot_rl_curves.py OUT_FOLDER PNG")
    folder, target = Path(sys.argv[1]), Path(sys.argv[2])
    variants = sorted(path.name[3 : -len("_logging.jsonl")] for path in folder.glob("rl_*_logging.jsonl"))
    if not variants:
        sys.exit(f"{folder}: no rl_<variant>_logging.jsonl files")
    rewards = {variant: read_rewards(folder, variant) for variant in variants}
    curves = {variant: variant_curves(folder, variant, rewards[variant]) for variant in variants}
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for axis, metric in zip(axes, ("reward mean", "reward std", "rollout accuracy")):
        for variant, values in curves.items():
            axis.plot(range(1, len(values[metric]) + 1), values[metric], label=variant)
        axis.set_title(metric)
        axis.set_xlabel("GRPO step")
        axis.grid(alpha=0.3)
    axes[0].legend()
    figure.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=110)
    for variant, values in curves.items():
        accuracy = values["rollout accuracy"]
        head, tail = accuracy[:5], accuracy[-5:]
        print(
            f"{variant:12} steps {len(accuracy):3}  reward {values['reward mean'][0]:.3f} -> {values['reward mean'][-1]:.3f}  "
            f"rollout accuracy (first 5 / last 5 steps) {_mean(head):.3f} -> {_mean(tail):.3f}"
        )
        for family, trend in family_trends(rewards[variant]).items():
            calls = "" if trend.first_calls is None else f", calls a rollout {trend.first_calls:.2f} -> {trend.last_calls:.2f}"
            print(f"{'':12}   {family:16} rollout accuracy {trend.first_accuracy:.3f} -> {trend.last_accuracy:.3f}{calls} "
                  f"({trend.rollouts} rollouts)")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
