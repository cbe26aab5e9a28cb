"""ChartQA (Masry et al., 2022): questions about chart images; the test split's human and augmented sets.

Format read: the release folder `ChartQA Dataset/test/` holding `test_human.json` and `test_augmented.json`
(lists of `{"imgname": "41699051005347.png", "query": str, "label": str}`) and `png/` with the images;
`path` is that folder or one of the json files (images then come from `png/` beside it).
Category: `human` or `augmented` (from the file name).

Scoring, relaxed accuracy (as defined with the benchmark and implemented in pix2struct's metrics): when both the
prediction and the label read as numbers ("12.5", "45%" = 0.45) and the label is non-zero, correct iff
|prediction - label| / |label| <= 5%; otherwise case-insensitive exact match. We also drop thousands
separators and a trailing full stop before parsing, which the original leaves in and counts as wrong.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pydantic import Field

from codedance_cli.errors import BadInput
from codedance_cli.eval.benchmarks.answers import image_bytes, read_rows, require
from codedance_cli.eval.benchmarks.base import Benchmark, make_task
from codedance_cli.recipes.base import RecipeModel
from codedance_cli.rewards.matching import extract_answer
from codedance_cli.trajectory.schema import Trajectory

PROMPT_SUFFIX = "Answer with a single word or number."


class ChartQAOptions(RecipeModel):
    splits: list[str] = Field(["human", "augmented"], description="Which test sets to read: human, augmented.")
    max_relative_change: float = Field(0.05, description="Relaxed-accuracy tolerance for numeric answers.")


class ChartQA(Benchmark):
    name = "chartqa"
    description = "ChartQA test: reading values off charts; relaxed accuracy (5% numeric tolerance)."
    answer_type = "text"
    hub_id = None  # the hub copies are re-packaged parquet, not the release layout read here
    Options = ChartQAOptions

    def load(self, path: Path) -> Iterator[Trajectory]:
        if path.is_file():
            files = [path]
        else:
            files = [path / f"test_{split}.json" for split in self.options.splits if (path / f"test_{split}.json").is_file()]
            if not files:
                raise BadInput(f"{path}: no test_human.json / test_augmented.json (ChartQA test folder) here")
        for file in files:
            split = file.stem.removeprefix("test_")
            image_dir = file.parent / "png"
            for index, row in read_rows(file):
                name = str(require(row, "imgname", file, index))
                yield make_task(
                    self.name,
                    f"{split}/{index}",
                    f"{str(require(row, 'query', file, index)).strip()}\n{PROMPT_SUFFIX}",
                    [image_bytes(name, image_dir, f"{file}: row {index}")],
                    str(require(row, "label", file, index)),
                    "text",
                    category=split,
                    imgname=name,
                )

    def extract(self, response: str, task: Trajectory) -> str | None:
        answer = extract_answer(response).strip().rstrip(".").strip()
        return answer or None

    def is_correct(self, prediction: str | None, task: Trajectory) -> bool:
        return prediction is not None and relaxed_correct(prediction, task.ground_truth or "", self.options.max_relative_change)


def _to_float(text: str) -> float | None:
    text = text.strip().rstrip(".").replace(",", "")
    try:
        return float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
    except ValueError:
        return None


def relaxed_correct(prediction: str, target: str, max_relative_change: float = 0.05) -> bool:
    """ChartQA's relaxed accuracy for one answer."""
    predicted, expected = _to_float(prediction), _to_float(target)
    if predicted is not None and expected:
        return abs(predicted - expected) / abs(expected) <= max_relative_change
    return prediction.strip().lower() == target.strip().lower()
