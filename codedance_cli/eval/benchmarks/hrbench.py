"""HR-Bench 4K and 8K (Wang et al., 2024): fine-grained single-instance (FSP) and cross-instance (FCP) perception.

Format read: the public `hr_bench_4k.tsv` / `hr_bench_8k.tsv` (also shipped as .parquet with the same columns,
hub DreamMr/HR-Bench): one row per question with columns
`index, question, answer (letter), category ("single" | "cross"), A, B, C, D, image (base64), cycle_category`.
Each question appears several times with its options rotated; rows of one rotation group share `cycle_category`.
`path` is the .tsv/.parquet file, or a folder holding it (searched recursively).

Scoring (official protocol, as in lmms-eval's HR-Bench task): the option is read from the response by rules
(a single option letter standing alone, else a single option text contained in the answer); the official
scorer asks a GPT judge only when the rules find nothing — here that is the optional judge of the recipe.
Headline: accuracy averaged within each `cycle_category`, then averaged over them.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from codedance_cli.errors import BadInput
from codedance_cli.eval.benchmarks.answers import LETTERS, image_bytes, read_rows, require
from codedance_cli.eval.benchmarks.base import Benchmark, make_task
from codedance_cli.rewards.matching import extract_answer
from codedance_cli.trajectory.schema import Trajectory


class HRBench4K(Benchmark):
    name = "hrbench_4k"
    description = "HR-Bench 4K: single- and cross-instance perception in 4K images (MC, A-D)."
    answer_type = "choice"
    hub_id = "DreamMr/HR-Bench"
    hub_patterns = ["*hr_bench_4k*"]
    file_stem = "hr_bench_4k"

    def load(self, path: Path) -> Iterator[Trajectory]:
        file = (
            path
            if path.is_file()
            else next((found for ext in (".tsv", ".parquet") for found in sorted(path.rglob(f"{self.file_stem}{ext}"))), None)
        )
        if file is None:
            raise BadInput(f"{path}: no {self.file_stem}.tsv or {self.file_stem}.parquet here")
        for index, row in read_rows(file):
            choices = [str(row[letter]) for letter in LETTERS[:8] if row.get(letter) not in (None, "") and str(row[letter]) != "nan"]
            answer = str(require(row, "answer", file, index)).strip().upper()
            if len(choices) < 2 or answer not in LETTERS[: len(choices)]:
                raise BadInput(f"{file}: row {index}: expected option columns A, B, ... and an answer letter among them")
            yield make_task(
                self.name,
                str(row.get("index", index)),
                str(require(row, "question", file, index)).strip(),
                [image_bytes(require(row, "image", file, index), file.parent, f"{file}: row {index}")],
                answer,
                "choice",
                choices=choices,
                category=str(row.get("category") or "all"),
                cycle_category=str(row.get("cycle_category") or row.get("index", index)),
            )

    def extract(self, response: str, task: Trajectory) -> str | None:
        """Official rule order: exactly one option letter standing alone, else exactly one option text in the answer; else None."""
        choices = task.choices or []
        answer = extract_answer(response)
        letters = set(LETTERS[: len(choices)])
        words = re.sub(r"[.()\[\],:;!*#{}]", " ", answer).split()
        standing = [word for word in words if word in letters]
        if len(set(standing)) == 1:
            return standing[0]
        if standing:  # several letters: ambiguous, the official scorer hands it to its judge
            return None
        lowered = answer.lower()
        found = [LETTERS[i] for i, choice in enumerate(choices) if choice.lower() and choice.lower() in lowered]
        return found[0] if len(found) == 1 else None

    def is_correct(self, prediction: str | None, task: Trajectory) -> bool:
        return prediction is not None and prediction == task.ground_truth

    def headline(self, correct_by_task: dict[str, bool], tasks: dict[str, Trajectory]) -> float:
        groups: dict[str, list[bool]] = defaultdict(list)
        for task_id, correct in correct_by_task.items():
            groups[str(tasks[task_id].metadata.get("cycle_category", task_id))].append(correct)
        if not groups:
            return 0.0
        return sum(sum(group) / len(group) for group in groups.values()) / len(groups)


class HRBench8K(HRBench4K):
    name = "hrbench_8k"
    description = "HR-Bench 8K: single- and cross-instance perception in 8K images (MC, A-D)."
    hub_patterns = ["*hr_bench_8k*"]
    file_stem = "hr_bench_8k"
