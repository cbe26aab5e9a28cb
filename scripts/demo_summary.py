"""The demo's closing table: every eval side by side, and what the RL stage did (printed on every `make demo`).

    python scripts/demo_summary.py artifacts/nano

Reads what the stages wrote (eval-*/results.json, rl/rl_summary.json), so a re-run with every stage done prints
the same summary as the run that made them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

EVALS = (("eval-before", "random init"), ("eval-sft", "after SFT"), ("eval-after", "after RL"))
ROWS = (
    ("accuracy %", lambda b: 100 * b["accuracy"]),
    ("code printed the answer %", lambda b: 100 * b.get("printed_reference", 0.0)),
    ("format adherence %", lambda b: 100 * b["format"]["adherence"]),
    ("code ran %", lambda b: 100 * b["format"]["code_ran"]),
    ("answer tag %", lambda b: 100 * b["format"]["answer_tag"]),
    ("tool calls a sample", lambda b: b.get("tool_calls_per_sample", 0.0)),
)


def main() -> None:
    art = Path(sys.argv[1] if len(sys.argv) > 1 else "artifacts/nano")
    found = [(label, json.loads((art / name / "results.json").read_text())) for name, label in EVALS if (art / name / "results.json").is_file()]
    console = Console(soft_wrap=True)
    if not found:
        console.print(f"no eval results under {art}")
        return
    table = Table(title=f"CodeDance-nano: held-out procedural items ({art})")
    table.add_column("")
    for label, _ in found:
        table.add_column(label, justify="right")
    for name, value in ROWS:
        cells = []
        for _, results in found:
            benchmark = next(iter(results["benchmarks"].values()))
            cells.append(f"{value(benchmark):.1f}" if name.endswith("%") else f"{value(benchmark):.2f}")
        table.add_row(name, *cells)
    console.print(table)
    summary = art / "rl" / "rl_summary.json"
    if summary.is_file():
        rl = json.loads(summary.read_text())
        console.print(
            f"RL: {rl['steps']} GRPO steps, reward mean/std {rl['first_reward']:.3f}/{rl['first_reward_std']:.3f} at the first step, "
            f"{rl['last_reward']:.3f}/{rl['last_reward_std']:.3f} at the last; "
            f"{'a learning signal' if rl['trained'] else 'NO learning signal'} (rl/rl_summary.json)"
        )
    console.print("What the nano model does and does not learn, and the GPU runs: docs/results.md")


if __name__ == "__main__":
    main()
