"""Counting (CountBenchQA / PixMo-Count style): an image, "how many X?", an integer answer.

Formats read: a .jsonl / .json / .parquet file (or a folder with one `test*` or `*.parquet`/`*.jsonl` file) of rows with
- the image as `image` (a path relative to the file, base64, or a datasets image struct) — CountBenchQA's layout;
- the count as `number` (CountBench, CountBenchQA) or `count` (PixMo-Count);
- the question as `question`; if absent, built from `label` (PixMo-Count: the object name) as "How many {label} are there?";
- optional `category` (e.g. the count range or object class) for the per-category table.
PixMo-Count ships image URLs only; download the images and put their paths in `image` first (no network here).

Scoring, as both sets report it: exact match of the integer read from the answer (digits or number words).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from codedance_cli.errors import BadInput
from codedance_cli.eval.benchmarks.answers import canonical_number, image_bytes, read_rows
from codedance_cli.eval.benchmarks.base import Benchmark, make_task
from codedance_cli.trajectory.schema import Trajectory

PROMPT_SUFFIX = "Answer with a single integer."


class Counting(Benchmark):
    name = "counting"
    description = "Counting (CountBenchQA / PixMo-Count style): how many objects; exact integer match."
    answer_type = "number"
    hub_id = "vikhyatk/CountBenchQA"

    def load(self, path: Path) -> Iterator[Trajectory]:
        file = path if path.is_file() else self._find_file(path)
        for index, row in read_rows(file):
            where = f"{file}: row {index}"
            count = row.get("number", row.get("count"))
            if count is None or canonical_number(str(count)) is None:
                raise BadInput(f"{where}: missing integer field 'number' (or 'count')")
            question = row.get("question") or (f"How many {row['label']} are there?" if row.get("label") else None)
            if not question:
                raise BadInput(f"{where}: missing field 'question' (or 'label' to build it from)")
            if row.get("image") is None:
                raise BadInput(f"{where}: missing field 'image'")
            yield make_task(
                self.name,
                str(row.get("id", index)),
                f"{str(question).strip()}\n{PROMPT_SUFFIX}",
                [image_bytes(row["image"], file.parent, where)],
                str(int(float(count))),
                "number",
                category=str(row.get("category") or "all"),
            )

    @staticmethod
    def _find_file(folder: Path) -> Path:
        candidates = sorted(folder.glob("test*.jsonl")) + sorted(folder.glob("test*.parquet")) + sorted(folder.glob("*.jsonl"))
        candidates += sorted(folder.glob("*.parquet")) + sorted(folder.glob("data/*.parquet")) + sorted(folder.glob("*.json"))
        if not candidates:
            raise BadInput(f"{folder}: no .jsonl / .parquet / .json file of counting questions here")
        return candidates[0]

    def extract(self, response: str, task: Trajectory) -> str | None:
        number = canonical_number(response)
        if number is None or number.endswith("%"):
            return None
        value = float(number)
        return str(int(value)) if value.is_integer() else number

    def is_correct(self, prediction: str | None, task: Trajectory) -> bool:
        return prediction is not None and prediction == task.ground_truth
