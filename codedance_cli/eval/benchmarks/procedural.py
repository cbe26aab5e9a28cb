"""The procedural held-out set: tasks made by `codedance_cli.procedural.make_tasks`, in our trajectory format.

Format read: a trajectory dataset (folder of `part-*.parquet` shards or one .parquet file, see
`codedance_cli.trajectory.store`); any turns it carries (solution trajectories) are dropped, the model starts fresh.
When `path` does not exist and `options.generate` is set, that many tasks are generated (seeded, reproducible)
and written there first, so a recipe alone defines the held-out set.

Scoring: the project's shared rule matching (`codedance_cli.rewards.matching.answers_match`), the same rule the
RL reward and the filter use, so eval accuracy means what training optimised. Categories: the task family, or
with `options.categories: variant` the family and the variant's kind (geometry/angle, counting/shape, ...).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import Field

from codedance_cli.errors import BadInput
from codedance_cli.eval.benchmarks.answers import canonical_number, extract_letter
from codedance_cli.eval.benchmarks.base import Benchmark
from codedance_cli.recipes.base import RecipeModel
from codedance_cli.rewards.matching import answers_match, extract_answer, normalize_text
from codedance_cli.trajectory.schema import Trajectory


class ProceduralOptions(RecipeModel):
    generate: int | None = Field(None, description="When `path` does not exist: generate this many held-out tasks there.")
    seed: int = Field(12345, description="Seed for generated tasks (keep it apart from the training seeds).")
    families: list[str] | None = Field(None, description="Task families to generate (default: all).")
    categories: Literal["family", "variant"] = Field(
        "family", description="Report accuracy per task family, or per family and variant kind (geometry/angle, counting/shape, ...).")


class Procedural(Benchmark):
    name = "procedural"
    description = "Procedural held-out tasks (counting, visual search, charts, geometry) verifiable by construction."
    answer_type = "text"
    Options = ProceduralOptions

    def creates_missing_path(self) -> bool:
        return bool(self.options.generate)

    def load(self, path: Path) -> Iterator[Trajectory]:
        from codedance_cli.trajectory.store import iter_trajectories, shard_paths

        if not path.exists():
            if not self.options.generate:
                raise BadInput(f"{path}: procedural held-out set not found (set options.generate: N to create it)")
            self._generate(path)
        if path.is_dir() and not shard_paths(path):
            raise BadInput(f"{path}: no part-*.parquet trajectory shards here")
        for task in iter_trajectories(path):
            metadata = {**task.metadata, "benchmark": self.name, "category": self._category(task.metadata)}
            yield task.model_copy(update={"turns": [], "final_answer": None, "stop_reason": None, "metadata": metadata})

    def _category(self, metadata: dict) -> str:
        family = str(metadata.get("family") or "all")
        if self.options.categories == "family" or not metadata.get("variant"):
            return family
        return f"{family}/{str(metadata['variant']).split('-')[0]}"  # charts' 'bar-sum' -> charts/bar

    def _generate(self, path: Path) -> None:
        from codedance_cli.procedural import make_tasks
        from codedance_cli.trajectory.store import write_trajectories

        tasks = make_tasks(self.options.generate, seed=self.options.seed, families=self.options.families)
        write_trajectories(path, tasks)

    def extract(self, response: str, task: Trajectory) -> str | None:
        if task.answer_type == "choice" and task.choices:
            return extract_letter(response, task.choices)
        if task.answer_type == "number":
            return canonical_number(response)
        answer = extract_answer(response).strip()
        if not answer:
            return None
        return answer if task.answer_type == "open" else normalize_text(answer) or None

    def is_correct(self, prediction: str | None, task: Trajectory) -> bool:
        return prediction is not None and answers_match(prediction, task.ground_truth, task.answer_type, task.choices)
