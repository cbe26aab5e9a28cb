"""What a benchmark is to `codedance eval`: a loader for its public file format plus its official scoring rule.

A benchmark turns its files into tasks (`Trajectory` objects with no turns, so the
tool loop can run them unchanged) and later decides, from the model's final text,
what the model answered (`extract`) and whether that is right (`is_correct`).
`extract` returns a canonical string (a letter, a normalised number) so that
majority voting over several samples compares like with like.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from pydantic import ValidationError

from codedance_cli.errors import BadInput
from codedance_cli.recipes.base import RecipeModel
from codedance_cli.trajectory.schema import AnswerType, Trajectory


class NoOptions(RecipeModel):
    """Benchmarks without options accept none (a typo still fails)."""


class Benchmark:
    """Base class; one subclass per benchmark module, registered by `name`."""

    name: ClassVar[str]
    description: ClassVar[str]
    answer_type: ClassVar[AnswerType]
    hub_id: ClassVar[str | None] = None  # Hugging Face dataset id holding the public files, when there is one
    hub_patterns: ClassVar[list[str] | None] = None  # files of `hub_id` to download (None: everything)
    Options: ClassVar[type[RecipeModel]] = NoOptions

    def __init__(self, options: dict[str, Any] | None = None, *, source: str = "recipe") -> None:
        try:
            self.options = self.Options(**(options or {}))
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            raise BadInput(f"{source}: benchmarks[{self.name}].options.{where}: {error['msg']}") from None

    def creates_missing_path(self) -> bool:
        """True when `load` builds its own files if `path` is missing (the procedural set can)."""
        return False

    def load(self, path: Path) -> Iterator[Trajectory]:
        """Tasks from the benchmark's files at `path`; raise BadInput naming the file/row for broken input."""
        raise NotImplementedError

    def response_text(self, traj: Trajectory) -> str:
        """What the official scorer would read: the answer tag if given, else the last message (extraction decides)."""
        if traj.final_answer is not None:
            return traj.final_answer
        return traj.turns[-1].text if traj.turns else ""

    def extract(self, response: str, task: Trajectory) -> str | None:
        """The model's answer in canonical form, or None when none can be read."""
        raise NotImplementedError

    def is_correct(self, prediction: str | None, task: Trajectory) -> bool:
        """The official rule applied to an extracted prediction."""
        raise NotImplementedError

    def category(self, task: Trajectory) -> str:
        return str(task.metadata.get("category") or "all")

    def headline(self, correct_by_task: dict[str, bool], tasks: dict[str, Trajectory]) -> float:
        """The benchmark's official headline number (plain accuracy unless the benchmark says otherwise)."""
        return sum(correct_by_task.values()) / len(correct_by_task) if correct_by_task else 0.0


def make_task(
    benchmark: str,
    task_id: str,
    question: str,
    images: list[bytes],
    ground_truth: str,
    answer_type: AnswerType,
    *,
    choices: list[str] | None = None,
    category: str = "all",
    **metadata: Any,
) -> Trajectory:
    """A task in the trajectory format, tagged with its benchmark and category."""
    return Trajectory(
        task_id=task_id,
        question=question,
        images=images,
        ground_truth=ground_truth,
        answer_type=answer_type,
        choices=choices,
        metadata={"benchmark": benchmark, "category": category, **metadata},
    )
