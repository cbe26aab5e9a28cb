"""The eval's HTML viewer: trajectories with their images, filterable by correct / wrong.

Rendering is the shared `codedance_cli.trajectory.html` page (the same one `codedance infer --html`
writes); this module only picks which samples go in and labels them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from codedance_cli.eval.samples import SampleRecord
from codedance_cli.eval.scoring import ScoredSample
from codedance_cli.trajectory.html import write_html
from codedance_cli.trajectory.schema import Trajectory


def pick_for_viewer(scored: list[ScoredSample], limit: int) -> list[ScoredSample]:
    """Up to `limit` samples: half the room for wrong ones (what people debug), the rest correct, in file order."""
    wrong = [s for s in scored if not s.correct]
    right = [s for s in scored if s.correct]
    take_wrong = wrong[: max(limit // 2, limit - len(right))]
    take_right = right[: limit - len(take_wrong)]
    chosen = {id(s) for s in take_wrong + take_right}
    return [s for s in scored if id(s) in chosen]


def write_viewer(
    path: Path,
    samples: list[ScoredSample],
    full_record: Callable[[str], SampleRecord],
    tasks: dict[tuple[str, str], Trajectory],
    input_images: dict[tuple[str, str], list[bytes]],
    *,
    title: str,
) -> Path:
    """One page: each sample's trajectory with its input images restored, labelled correct or wrong."""
    trajectories: list[Trajectory] = []
    labels: list[str] = []
    for sample in samples:
        key = f"{sample.benchmark}/{sample.task_id}#{sample.sample}"
        task = tasks[(sample.benchmark, sample.task_id)]
        trajectory = full_record(key).trajectory.model_copy(
            update={
                "task_id": f"{key} · {sample.category} · predicted {sample.prediction!r}",
                "images": input_images.get((sample.benchmark, sample.task_id), []),
                "question": task.question,
                "choices": task.choices,
                "ground_truth": task.ground_truth,
            }
        )
        trajectories.append(trajectory)
        labels.append("correct" if sample.correct else "wrong")
    return write_html(path, trajectories, labels, title=title)
