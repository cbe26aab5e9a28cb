"""Write the first task of a trajectory dataset as image.png + question.txt, for the demo's `codedance infer` step."""

from __future__ import annotations

import sys
from pathlib import Path

from codedance_cli.trajectory import iter_trajectories


def main(dataset: str, out_dir: str) -> None:
    task = next(iter_trajectories(dataset))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "image.png").write_bytes(task.images[0])
    (out / "question.txt").write_text(task.question)
    print(f"{out}/image.png  {task.question!r}  (ground truth {task.ground_truth!r})")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: sample_task.py DATASET OUT_DIR")
    main(sys.argv[1], sys.argv[2])
