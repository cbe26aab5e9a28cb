"""Pick the held-out task for the demo's `codedance infer` step and write it as image.png + question.txt.

With an eval's samples.jsonl it picks, in order of preference, a task the evaluated model answered right with code
that ran, then one whose code ran, then the first task; and it says which, so the demo never presents a failure as
a typical answer without saying so.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from codedance_cli.trajectory import iter_trajectories


def _rank(sample: dict, tasks: dict) -> int:
    trajectory = sample["trajectory"]
    ran = any(turn.get("observation") and not turn["observation"].get("error_type") for turn in trajectory.get("turns", []))
    task = tasks.get(sample["task_id"])
    right = task is not None and str(trajectory.get("final_answer") or "").strip() == str(task.ground_truth or "").strip()
    return 0 if ran and right else 1 if ran else 2


def main(dataset: str, out_dir: str, samples: str | None = None) -> None:
    tasks = {task.task_id: task for task in iter_trajectories(dataset)}
    chosen, why = next(iter(tasks.values())), "the first held-out task (no eval samples to choose from)"
    if samples and Path(samples).is_file():
        records = [json.loads(line) for line in Path(samples).read_text().splitlines() if line.strip()]
        records = [record for record in records if record["task_id"] in tasks]
        if records:
            best = min(records, key=lambda record: _rank(record, tasks))
            chosen = tasks[best["task_id"]]
            why = ("a task the model answered right with code that ran", "a task where the model's code ran (its answer was wrong)",
                   "the first task: the nano model ran no code successfully on any held-out task; it is too small to answer "
                   "reliably (docs/results.md shows what a 25M model trained on a GPU does)")[_rank(best, tasks)]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "image.png").write_bytes(chosen.images[0])
    (out / "question.txt").write_text(chosen.question)
    print(f"{out}/image.png  {chosen.question!r}  (ground truth {chosen.ground_truth!r}): {why}")


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: sample_task.py DATASET OUT_DIR [EVAL_SAMPLES_JSONL]")
    main(*sys.argv[1:])
