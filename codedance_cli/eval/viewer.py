"""The eval's HTML viewer: trajectories with their images, filterable by correct / wrong.

Rendering is the shared `codedance_cli.viewer.html` page (the same one `codedance infer --html`
writes); this module only picks which samples go in, labels them, and says how each prediction was read,
so that a card whose graded answer differs from its answer tag says why instead of contradicting itself.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from codedance_cli.eval.samples import SampleRecord
from codedance_cli.eval.scoring import ScoredSample
from codedance_cli.viewer.html import Prediction, write_html
from codedance_cli.trajectory.schema import Trajectory


def pick_for_viewer(scored: list[ScoredSample], limit: int) -> list[ScoredSample]:
    """Up to `limit` samples: half the room for wrong ones (what people debug), the rest correct, in file order."""
    wrong = [s for s in scored if not s.correct]
    right = [s for s in scored if s.correct]
    take_wrong = wrong[: max(limit // 2, limit - len(right))]
    take_right = right[: limit - len(take_wrong)]
    chosen = {id(s) for s in take_wrong + take_right}
    return [s for s in scored if id(s) in chosen]


# How a benchmark's extraction reads each answer type (`Benchmark.extract`), for the label of a relaxed reading.
_READINGS = {"choice": "the option it names", "number": "last number"}


def prediction_of(sample: ScoredSample, trajectory: Trajectory, task: Trajectory) -> Prediction:
    """What was graded for `sample`, labelled with how it was read when it is not the answer tag as written.

    The scorer reads `Benchmark.response_text`: the answer tag, or without one the whole last message; `extract`
    then canonicalises it (an option letter, the last number, normalised text), and a judge may overrule the rules.
    """
    if sample.judged and sample.correct:
        return Prediction(sample.prediction, "judge: the same as the reference")
    tagged = trajectory.final_answer is not None
    if sample.prediction is None:
        return Prediction(None, "" if tagged else "no answer tag")
    if tagged and sample.prediction == (trajectory.final_answer or "").strip():
        return Prediction(sample.prediction)
    reading = _READINGS.get(task.answer_type, "normalised text")
    source = "of the answer tag" if tagged else "of the last message, no answer tag"
    return Prediction(sample.prediction, f"relaxed: {reading} {source}")


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
    predictions: list[Prediction] = []
    for sample in samples:
        key = f"{sample.benchmark}/{sample.task_id}#{sample.sample}"
        task = tasks[(sample.benchmark, sample.task_id)]
        recorded = full_record(key).trajectory
        trajectory = recorded.model_copy(
            update={
                "task_id": f"{key} · {sample.category}",
                "images": input_images.get((sample.benchmark, sample.task_id), []),
                "question": task.question,
                "choices": task.choices,
                "ground_truth": task.ground_truth,
            }
        )
        trajectories.append(trajectory)
        labels.append("correct" if sample.correct else "wrong")
        predictions.append(prediction_of(sample, recorded, task))
    return write_html(path, trajectories, labels, title=title, predictions=predictions)
