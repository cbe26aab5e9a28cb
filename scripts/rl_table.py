"""The reward ablation's table (issue 15, like the paper's Table 3) from what `gpu_rl_check.sh` brings back.

    python scripts/rl_table.py UNPACKED_OUT [--baseline sft] [--json]

UNPACKED_OUT is the unpacked gpu_rl.tar.gz (its `out/` folder, or the folder holding it): one
`eval_NAME_results.json` per model (NAME = sft, or VARIANT-sSEED for an RL run) and `walls.txt`, whose
`eval-NAME: PATH` lines say which checkpoint each eval took. Prints a markdown table: held-out accuracy, accuracy per
family, printed %, read-off %, tool calls a sample, failed calls %, turns, and, for each RL run, the items it gained
and lost against the baseline's, with the exact two-sided sign test over those discordant items. Why paired: with
a few dozen items a family, two runs' accuracies differ by several points on noise alone, while items that flip
between a checkpoint and its own parent are what RL changed. Runs of one variant over several seeds are summed up
in a second table (mean and range of the change).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn

RESULTS = re.compile(r"^eval_(?P<name>.+)_results\.json$")
CHECKPOINT = re.compile(r"^eval-(?P<name>\S+): .*?(?:checkpoint-(?P<step>\d+)|/last)\s*$")


@dataclass
class Row:
    """One model's held-out numbers, and its pairing against the baseline (None for the baseline itself)."""

    name: str
    steps: str
    items: int
    accuracy: float
    families: dict[str, float]
    printed: float
    read_off: float | None
    calls: float
    failed_calls: float
    turns: float
    gained: int | None = None
    lost: int | None = None
    sign_p: float | None = None


def fail(message: str) -> NoReturn:
    """Bad input: one line on stderr, exit 2 (as the codedance commands do)."""
    print(message, file=sys.stderr)
    raise SystemExit(2)


def out_folder(folder: Path) -> Path:
    """The folder holding the eval results: the unpacked pack's out/, or the folder itself."""
    return folder / "out" if (folder / "out").is_dir() else folder


def sign_test(gained: int, lost: int) -> float:
    """Exact two-sided binomial test of gained vs lost items at p = 1/2 (1.0 when nothing flipped)."""
    flips = gained + lost
    if flips == 0:
        return 1.0
    tail = sum(math.comb(flips, k) for k in range(min(gained, lost) + 1)) / 2 ** flips
    return min(1.0, 2 * tail)


def load_results(folder: Path) -> dict[str, dict[str, Any]]:
    """NAME -> results.json of every eval in the folder (or its out/), in name order."""
    out = out_folder(folder)
    found = {}
    for path in sorted(out.glob("eval_*_results.json")):
        match = RESULTS.match(path.name)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            fail(f"{path}: not readable as JSON ({error})")
        if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), dict) or len(data["benchmarks"]) != 1:
            fail(f"{path}: not the results.json of an eval over one benchmark")
        found[match["name"]] = data
    if not found:
        fail(f"{out}: no eval_NAME_results.json (unpack gpu_rl.tar.gz there first)")
    return found


def checkpoint_steps(folder: Path) -> dict[str, str]:
    """NAME -> the GRPO step of the checkpoint its eval took, from walls.txt (`last` when the run finished)."""
    walls = out_folder(folder) / "walls.txt"
    steps: dict[str, str] = {}
    if walls.is_file():
        for line in walls.read_text(encoding="utf-8").splitlines():
            match = CHECKPOINT.match(line.strip())
            if match and match["name"] != "sft":
                steps[match["name"]] = match["step"] or "last"
    return steps


def correct_items(results: dict[str, Any]) -> dict[str, bool]:
    """task_id -> right or wrong (the voted answer: one sample an item in these evals)."""
    return {row["task_id"]: bool(row["vote_correct"]) for row in results.get("per_sample", [])}


def make_row(name: str, results: dict[str, Any], steps: str, baseline: dict[str, bool] | None) -> Row:
    summary = next(iter(results["benchmarks"].values()))
    row = Row(name=name, steps=steps, items=summary["items"], accuracy=summary["accuracy"],
              families={family: values["accuracy"] for family, values in summary["categories"].items()},
              printed=summary["printed_reference"], read_off=summary.get("read_off"),
              calls=summary["tool_calls_per_sample"], failed_calls=summary["exec_failure_rate"],
              turns=summary["mean_turns"])
    if baseline is not None:
        mine = correct_items(results)
        shared = mine.keys() & baseline.keys()
        row.gained = sum(mine[item] and not baseline[item] for item in shared)
        row.lost = sum(baseline[item] and not mine[item] for item in shared)
        row.sign_p = sign_test(row.gained, row.lost)
    return row


def table(rows: list[Row], baseline: str) -> str:
    families = sorted({family for row in rows for family in row.families})
    head = ["model", "GRPO steps", "acc %", *families, "printed %", "read-off %", "calls", "failed calls %", "turns",
            f"gained / lost vs {baseline}", "sign test p"]
    lines = ["| " + " | ".join(head) + " |", "| --- | ---: " + "| ---: " * (len(head) - 2) + "|"]
    for row in rows:
        cells = [f"`{row.name}`" if row.name != baseline else row.name, row.steps, f"{100 * row.accuracy:.1f}",
                 *[f"{100 * row.families[f]:.1f}" if f in row.families else "–" for f in families],
                 f"{100 * row.printed:.1f}", "–" if row.read_off is None else f"{100 * row.read_off:.1f}",
                 f"{row.calls:.2f}", f"{100 * row.failed_calls:.1f}", f"{row.turns:.2f}",
                 "–" if row.gained is None else f"{row.gained} / {row.lost}",
                 "–" if row.sign_p is None else f"{row.sign_p:.2g}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def variants(rows: list[Row], baseline: Row) -> list[dict[str, Any]]:
    """Per variant over its seeds: the change in accuracy against the baseline, mean and range, in points."""
    by_variant: dict[str, list[float]] = {}
    for row in rows:
        if row.name == baseline.name:
            continue
        variant = re.sub(r"-s\d+$", "", row.name)
        by_variant.setdefault(variant, []).append(100 * (row.accuracy - baseline.accuracy))
    return [{"variant": name, "seeds": len(changes), "mean_change_points": sum(changes) / len(changes),
             "min_change_points": min(changes), "max_change_points": max(changes)}
            for name, changes in by_variant.items()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the unpacked gpu_rl.tar.gz (or its out/ folder)")
    parser.add_argument("--baseline", default="sft", help="the eval the RL runs are paired with (default: sft)")
    parser.add_argument("--json", action="store_true", help="rows and per-variant changes as JSON")
    args = parser.parse_args(argv)
    found = load_results(args.folder)
    if args.baseline not in found:
        fail(f"{args.folder}: no eval_{args.baseline}_results.json to pair the runs with (have: {', '.join(found)})")
    steps = checkpoint_steps(args.folder)
    base_items = correct_items(found[args.baseline])
    base = make_row(args.baseline, found[args.baseline], "–", None)
    rows = [base] + [make_row(name, data, steps.get(name, "?"), base_items)
                     for name, data in found.items() if name != args.baseline]
    summary = variants(rows, base)
    if args.json:
        print(json.dumps({"rows": [asdict(row) for row in rows], "variants": summary}, indent=2))
        return
    print(table(rows, args.baseline))
    if any(entry["seeds"] > 1 for entry in summary):
        print("\n| variant | seeds | accuracy change, points: mean | min | max |\n| --- | ---: | ---: | ---: | ---: |")
        for entry in summary:
            print(f"| `{entry['variant']}` | {entry['seeds']} | {entry['mean_change_points']:+.1f} | "
                  f"{entry['min_change_points']:+.1f} | {entry['max_change_points']:+.1f} |")


if __name__ == "__main__":
    main()
