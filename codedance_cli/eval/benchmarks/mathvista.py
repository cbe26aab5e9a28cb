"""MathVista testmini (Lu et al., 2024): mathematical reasoning in visual contexts; 1,000 items.

Formats read (`path` = the dataset folder or the file):
1. The GitHub release `data/testmini.json`: a mapping pid -> `{"question", "image": "images/1.jpg", "choices": [..] | null,
   "unit", "precision", "answer", "question_type": "multi_choice" | "free_form",
   "answer_type": "integer" | "float" | "text" | "list", "pid", "metadata": {"task", "context", "skills", ...}}`,
   images relative to the folder holding the json's parent `data/` or the json itself.
2. The hub parquet (AI4Math/MathVista, `data/testmini-*.parquet`): the same columns plus `decoded_image`
   (image struct) and `query` (the official prompt). We build the prompt ourselves instead (a hint on the
   answer form, the question, the unit), because the loop lists the options after the question itself.

Scoring, the official protocol: (1) answer extraction — the official one asks GPT-4 when its quick rules fail;
here rules (answer tag, option letter, last number) with the recipe's judge as optional fallback;
(2) normalisation (`calculate_score.py`): multi-choice -> the option text (letter mapped, else the option with the
smallest edit distance), integer -> str(int(float(x))), float -> str(round(float(x), precision)), list -> str;
(3) exact string equality with `answer`. Categories: `metadata.task`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from codedance_cli.errors import BadInput
from codedance_cli.eval.benchmarks.answers import LETTERS, extract_letter, image_bytes, read_rows, require
from codedance_cli.eval.benchmarks.base import Benchmark, make_task
from codedance_cli.rewards.matching import extract_answer, parse_number
from codedance_cli.trajectory.schema import Trajectory

HINTS = {
    "multi_choice": "Hint: answer with the letter of the correct option, e.g., A, B, C, D.",
    "integer": "Hint: answer with an integer, e.g., 1, 2, 3.",
    "float1": "Hint: answer with a floating-point number with one decimal place, e.g., 1.2, 1.3, 1.4.",
    "float2": "Hint: answer with a floating-point number with two decimal places, e.g., 1.23, 1.34, 1.45.",
    "float": "Hint: answer with a floating-point number.",
    "list": "Hint: answer with a Python list, e.g., [1, 2, 3].",
    "text": "Hint: answer with a short text.",
}


class MathVista(Benchmark):
    name = "mathvista"
    description = "MathVista testmini: math reasoning over charts, diagrams, natural images (MC and free-form)."
    answer_type = "open"
    hub_id = "AI4Math/MathVista"
    hub_patterns = ["data/testmini-*.parquet"]

    def load(self, path: Path) -> Iterator[Trajectory]:
        files = [path] if path.is_file() else self._find_files(path)
        for file in files:
            for index, row in read_rows(file):
                yield self._task(row, file, index)

    def _find_files(self, folder: Path) -> list[Path]:
        for candidate in (folder / "testmini.json", folder / "data" / "testmini.json"):
            if candidate.is_file():
                return [candidate]
        parquet = sorted(folder.glob("testmini*.parquet")) or sorted(folder.glob("data/testmini*.parquet"))
        if not parquet:
            raise BadInput(f"{folder}: no testmini.json or testmini-*.parquet (MathVista testmini) here")
        return parquet

    def _task(self, row: dict[str, Any], file: Path, index: int) -> Trajectory:
        where = f"{file}: row {index}"
        question_type = str(require(row, "question_type", file, index))
        answer_type = str(require(row, "answer_type", file, index))
        choices = [str(choice) for choice in row.get("choices") or []] or None
        if question_type == "multi_choice" and not choices:
            raise BadInput(f"{where}: multi_choice item without 'choices'")
        precision = row.get("precision")
        precision = int(precision) if precision is not None and str(precision) != "nan" else None
        image = row.get("decoded_image") or require(row, "image", file, index)
        base = file.parent.parent if file.parent.name == "data" and not (file.parent / "images").is_dir() else file.parent
        metadata = row.get("metadata") or {}
        return make_task(
            self.name,
            str(row.get("pid") or row.get("_key") or index),
            self._query(row, question_type, answer_type, precision),
            [image_bytes(image, base, where)],
            str(require(row, "answer", file, index)),
            "choice" if question_type == "multi_choice" else "number" if answer_type in ("integer", "float") else "text",
            choices=choices,
            category=str(metadata.get("task") or "all"),
            question_type=question_type,
            mathvista_answer_type=answer_type,
            precision=precision,
            unit=row.get("unit"),
            context=metadata.get("context"),
            skills=list(metadata.get("skills") or []),
        )

    @staticmethod
    def _query(row: dict[str, Any], question_type: str, answer_type: str, precision: int | None) -> str:
        if question_type == "multi_choice":
            hint = HINTS["multi_choice"]
        elif answer_type == "float":
            hint = HINTS.get(f"float{precision}", HINTS["float"])
        else:
            hint = HINTS.get(answer_type, HINTS["text"])
        question = str(row["question"]).strip()
        if row.get("unit"):
            question += f" (Unit: {row['unit']})"
        return f"{hint}\nQuestion: {question}"

    def extract(self, response: str, task: Trajectory) -> str | None:
        """Extraction then the official normalisation, giving the string compared with `answer`."""
        answer = extract_answer(response).strip()
        if not answer:
            return None
        kind = task.metadata.get("question_type")
        answer_type = task.metadata.get("mathvista_answer_type")
        choices = task.choices or []
        if kind == "multi_choice":
            if answer in choices:
                return answer
            letter = extract_letter(answer, choices)
            if letter is not None:
                return choices[LETTERS.index(letter)]
            if len(answer) > 3 * max(len(choice) for choice in choices) + 10:
                return None  # prose, not an extracted answer: the official pipeline's GPT step (here: the judge) reads it
            return min(choices, key=lambda choice: edit_distance(answer, choice))
        if answer_type in ("integer", "float"):
            parsed = parse_number(answer)
            if parsed is None:
                return None
            value = parsed[0]
            if answer_type == "integer":
                return str(int(value))
            precision = task.metadata.get("precision")
            return str(round(value, precision if precision is not None else 0 if value.is_integer() else 2))
        if answer_type == "list":
            match = re.search(r"\[[^\[\]]*\]", answer)
            return re.sub(r"\s*,\s*", ", ", match.group(0)) if match else answer
        return answer

    def is_correct(self, prediction: str | None, task: Trajectory) -> bool:
        return prediction is not None and prediction == task.ground_truth


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (the official scorer picks the closest option by it)."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]
