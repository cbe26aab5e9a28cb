"""V* Bench (Wu & Xie, 2023): small details in high-resolution images, 4-way (or 2-way) multiple choice.

Formats read (`path` is the benchmark folder, or one of its files):

1. The official release (github penghao-wu/vstar, hub craigwu/vstar_bench): one folder per category,
   `direct_attributes/` and `relative_position/`, each holding `NAME.jpg` beside `NAME.json` with
   `{"question": str, "options": [str, ...], "target_object": [...], "bbox": [...]}`; the **first**
   option is the correct one (the official scorer ranks options by likelihood, so order is free there).
   For generative answering we present the options in an order shuffled per image with a fixed seed
   (`options.shuffle_seed`), so the correct letter is not always A.
2. The flattened question file (`test_questions.jsonl`, or the same rows as .json/.parquet as in
   lmms-lab/vstar-bench): `{"image": "direct_attributes/x.jpg" | image struct, "text": "question\\n(A) ..\\n(B) ..",
   "category": str, "question_id": int, "label": "A"}`.

Scoring (as lmms-eval's V* task): read one option letter from the response; correct iff it is the label.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from pathlib import Path

from pydantic import Field

from codedance_cli.errors import BadInput
from codedance_cli.eval.benchmarks.answers import LETTERS, extract_letter, image_bytes, read_rows, require
from codedance_cli.eval.benchmarks.base import Benchmark, make_task
from codedance_cli.recipes.base import RecipeModel
from codedance_cli.trajectory.schema import Trajectory

CATEGORIES = ("direct_attributes", "relative_position")
INLINE_OPTION = re.compile(r"\(([A-Z])\)\s*(.+?)(?=\s*\([A-Z]\)|$)", re.DOTALL)


class VStarOptions(RecipeModel):
    shuffle_seed: int = Field(0, description="Seed of the per-image option order for the folder layout (correct option is stored first).")


class VStarBench(Benchmark):
    name = "vstar"
    description = "V* Bench: attribute and spatial questions about small objects in high-resolution images (MC)."
    answer_type = "choice"
    hub_id = "craigwu/vstar_bench"
    Options = VStarOptions

    def load(self, path: Path) -> Iterator[Trajectory]:
        if path.is_file():
            yield from self._load_question_file(path)
            return
        for name in ("test_questions.jsonl", "test_questions.json", "test_questions.parquet"):
            if (path / name).is_file():
                yield from self._load_question_file(path / name)
                return
        folders = [path / category for category in CATEGORIES if (path / category).is_dir()]
        if not folders:
            raise BadInput(f"{path}: not a V* Bench folder (expected {' and '.join(CATEGORIES)}/ or test_questions.jsonl)")
        for folder in folders:
            yield from self._load_category_folder(folder)

    def _load_category_folder(self, folder: Path) -> Iterator[Trajectory]:
        for annotation_path in sorted(folder.glob("*.json")):
            try:
                annotation = json.loads(annotation_path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise BadInput(f"{annotation_path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
            question = annotation.get("question")
            options = annotation.get("options")
            if not isinstance(question, str) or not isinstance(options, list) or len(options) < 2:
                raise BadInput(f"{annotation_path}: expected 'question' (text) and 'options' (a list of 2+ options, correct first)")
            image_path = next((p for p in folder.glob(annotation_path.stem + ".*") if p.suffix.lower() != ".json"), None)
            if image_path is None:
                raise BadInput(f"{annotation_path}: no image file named {annotation_path.stem}.* beside it")
            order = list(range(len(options)))
            random.Random(f"{self.options.shuffle_seed}:{folder.name}/{annotation_path.stem}").shuffle(order)
            choices = [str(options[i]) for i in order]
            label = LETTERS[order.index(0)]
            yield make_task(
                self.name,
                f"{folder.name}/{annotation_path.stem}",
                question.strip(),
                [image_bytes(image_path.name, folder, str(image_path))],
                label,
                "choice",
                choices=choices,
                category=folder.name,
            )

    def _load_question_file(self, path: Path) -> Iterator[Trajectory]:
        for index, row in read_rows(path):
            text = str(require(row, "text", path, index))
            label = str(require(row, "label", path, index)).strip().upper()
            text = re.sub(r"\s*Answer with the option's letter.*$", "", text, flags=re.DOTALL | re.IGNORECASE)
            prefix = text.split("(A)")[0]
            choices = [option.strip() for _, option in INLINE_OPTION.findall(text[len(prefix) :])]
            if len(choices) < 2 or label not in LETTERS[: len(choices)]:
                raise BadInput(f"{path}: row {index}: expected options '(A) .. (B) ..' in 'text' and a label letter among them")
            stem = prefix.strip()
            image = image_bytes(require(row, "image", path, index), path.parent, f"{path}: row {index}")
            yield make_task(
                self.name,
                str(row.get("question_id", index)),
                stem,
                [image],
                label,
                "choice",
                choices=choices,
                category=str(row.get("category") or "all"),
            )

    def extract(self, response: str, task: Trajectory) -> str | None:
        return extract_letter(response, task.choices or [])

    def is_correct(self, prediction: str | None, task: Trajectory) -> bool:
        return prediction is not None and prediction == task.ground_truth
