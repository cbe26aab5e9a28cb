"""Which items would give GRPO a gradient: per family, how many of each item's sampled answers are right.

    codedance eval RECIPE --set samples=8 --set loop.temperature=1.0 ... --set output_dir=DIR
    python scripts/group_spread.py DIR/samples.jsonl [--json]

GRPO learns only from groups whose rollouts differ: a group of all-wrong (or all-right) answers has zero advantage.
Sampling an SFT checkpoint k times an item at the RL recipe's temperature, before spending device time on RL, says
which families have such groups (docs/results.md, tenth run). Items with fewer than k samples written (an eval cut
short) are left out.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from codedance_cli.rewards.matching import answers_match


def family_of(task_id: str) -> str:
    """proc-geometry-s300-000004 -> geometry: the procedural ids name their family second."""
    parts = task_id.split("-")
    return parts[1] if len(parts) > 2 else "all"


def spread(samples: Path) -> dict[str, dict[str, object]]:
    outcomes: dict[str, list[bool]] = defaultdict(list)
    for number, line in enumerate(samples.read_text().splitlines(), 1):
        try:
            trajectory = json.loads(line)["trajectory"]
        except (json.JSONDecodeError, KeyError) as error:
            raise SystemExit(f"{samples}:{number}: not an eval sample ({error})") from None
        answer = trajectory.get("final_answer")
        right = bool(answer) and answers_match(str(answer), str(trajectory["ground_truth"]),
                                               answer_type=trajectory.get("answer_type") or "text",
                                               choices=trajectory.get("choices"), question=trajectory.get("question", ""))
        outcomes[trajectory["task_id"]].append(right)
    k = max((len(v) for v in outcomes.values()), default=0)
    families: dict[str, dict[str, object]] = {}
    for task_id, results in sorted(outcomes.items()):
        if len(results) < k:
            continue
        family = families.setdefault(family_of(task_id), {"items": 0, "rollouts": 0, "right": 0, "mixed_groups": 0, "right_per_item": []})
        family["items"] += 1
        family["rollouts"] += len(results)
        family["right"] += sum(results)
        family["mixed_groups"] += 0 < sum(results) < len(results)
        family["right_per_item"].append(sum(results))
    return families


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("samples", type=Path, help="an eval's samples.jsonl (samples > 1)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    if not args.samples.is_file():
        sys.exit(f"{args.samples}: no such file")
    families = spread(args.samples)
    if args.json:
        print(json.dumps(families, indent=2))
        return
    print("| family | items | rollouts | right % | groups with right and wrong rollouts |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, f in families.items():
        print(f"| {name} | {f['items']} | {f['rollouts']} | {100 * f['right'] / max(f['rollouts'], 1):.1f} | {f['mixed_groups']} of {f['items']} |")


if __name__ == "__main__":
    main()
