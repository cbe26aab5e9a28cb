"""Which items would give GRPO a gradient: per family, how many of each item's sampled answers are right.

    codedance eval RECIPE --set samples=8 --set loop.temperature=1.0 ... --set output_dir=DIR
    python scripts/group_spread.py DIR/results.json [--json]

GRPO learns only from groups whose rollouts differ: a group of all-wrong (or all-right) answers has zero advantage.
Sampling an SFT checkpoint k times an item at the RL recipe's temperature, before spending device time on RL, says
which families have such groups (docs/results.md, tenth run). The verdicts and families are the eval's own
(results.json's per_sample rows), so this counts what the eval scored rather than scoring again.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rl_table import fail  # noqa: E402  (one line on stderr, exit 2: the scripts' shared bad-input exit)


def per_sample_rows(results: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(results.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        fail(f"{results}: not readable as JSON ({error})")
    rows = data.get("per_sample") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and {"task_id", "correct"} <= r.keys() for r in rows):
        fail(f"{results}: no per_sample rows with task_id and correct (not an eval's results.json)")
    return rows


def spread(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """family -> items, rollouts, right, mixed_groups (items with both right and wrong samples), right_per_item."""
    outcomes: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for row in rows:
        outcomes[(row.get("category") or row.get("benchmark") or "all", row["task_id"])].append(bool(row["correct"]))
    families: dict[str, dict[str, Any]] = {}
    for (family, _), results in sorted(outcomes.items()):
        right = sum(results)
        counts = families.setdefault(family, {"items": 0, "rollouts": 0, "right": 0, "mixed_groups": 0, "right_per_item": []})
        counts["items"] += 1
        counts["rollouts"] += len(results)
        counts["right"] += right
        counts["mixed_groups"] += 0 < right < len(results)
        counts["right_per_item"].append(right)
    return families


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="an eval's results.json (samples > 1)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    families = spread(per_sample_rows(args.results))
    if args.json:
        print(json.dumps(families, indent=2))
        return
    print("| family | items | rollouts | right % | groups with right and wrong rollouts |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, f in families.items():
        print(f"| {name} | {f['items']} | {f['rollouts']} | {100 * f['right'] / max(f['rollouts'], 1):.1f} | {f['mixed_groups']} of {f['items']} |")


if __name__ == "__main__":
    main()
