"""From logged samples to numbers: per-sample scores, majority vote over n samples, per-benchmark summaries.

Scoring is redone from the sample log on every run (it is cheap), so a fixed extraction
rule or a new judge re-scores old generations without re-running the model.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from codedance_cli.eval.benchmarks.base import Benchmark
from codedance_cli.eval.samples import SampleRecord
from codedance_cli.recipes.eval import EvalJudge
from codedance_cli.trajectory.schema import Trajectory


@dataclass
class ScoredSample:
    """One sample's verdict and the behaviour numbers the report aggregates."""

    benchmark: str
    task_id: str
    sample: int
    category: str
    prediction: str | None
    correct: bool
    judged: bool = False
    answer_tagged: bool = False  # the model closed with an answer tag
    has_code: bool = False  # at least one code block was extracted
    code_ran: bool = False  # at least one code block executed without error
    printed_reference: bool = False  # a code cell printed the reference answer (see printed_reference)
    tool_calls: int = 0
    failed_calls: int = 0
    turns: int = 0
    stop_reason: str | None = None
    seconds: float = 0.0

    @property
    def format_ok(self) -> bool:
        """Format adherence: executable code and an answer tag, what SFT is meant to teach."""
        return self.code_ran and self.answer_tagged


@dataclass
class TaskResult:
    """An item's voted answer over its samples."""

    benchmark: str
    task_id: str
    category: str
    vote: str | None
    correct: bool
    samples: list[ScoredSample] = field(default_factory=list)


def reference_option(task: Trajectory) -> str | None:
    """The option text a lettered-choice reference names ('B' -> choices[1]); None for other references."""
    letter = (task.ground_truth or "").strip().upper()
    if not task.choices or len(letter) != 1 or not "A" <= letter <= "Z" or ord(letter) - 65 >= len(task.choices):
        return None
    return task.choices[ord(letter) - 65]


def printed_reference(stdouts: list[str], task: Trajectory) -> bool:
    """Whether a cell printed the reference answer (for a lettered choice, its option text) as a whole word.

    Why: a tool-using model can fail in two places, in the code or in reading its output off into the answer.
    Accuracy well under this share means the code found the answer and the model did not copy it. It is an upper
    bound, not a verdict: a printed table of many numbers can hold the reference by chance.
    """
    option = reference_option(task)  # a lone letter turns up in any output: look for the option it names
    wanted = option if option is not None else (task.ground_truth or "").strip()
    if not wanted:
        return False
    pattern = re.compile(rf"(?<![\w.]){re.escape(wanted)}(?![\w]|\.\d)", re.IGNORECASE)
    return any(pattern.search(stdout) for stdout in stdouts)


def score_sample(benchmark: Benchmark, task: Trajectory, record: SampleRecord) -> ScoredSample:
    """Rules only: extract the answer from the response and apply the benchmark's official comparison."""
    trajectory = record.trajectory
    prediction = benchmark.extract(benchmark.response_text(trajectory), task)
    observations = [turn.observation for turn in trajectory.turns if turn.code is not None and turn.observation is not None]
    return ScoredSample(
        benchmark=benchmark.name,
        task_id=task.task_id,
        sample=record.sample,
        category=benchmark.category(task),
        prediction=prediction,
        correct=benchmark.is_correct(prediction, task),
        answer_tagged=trajectory.final_answer is not None,
        has_code=any(turn.code is not None for turn in trajectory.turns),
        code_ran=any(observation.ok for observation in observations),
        printed_reference=printed_reference([observation.stdout for observation in observations], task),
        tool_calls=trajectory.num_tool_calls,
        failed_calls=sum(1 for observation in observations if not observation.ok),
        turns=len(trajectory.turns),
        stop_reason=trajectory.stop_reason,
        seconds=record.seconds,
    )


async def apply_judge(
    judge_config: EvalJudge,
    scored: list[ScoredSample],
    benchmarks: dict[str, Benchmark],
    tasks: dict[tuple[str, str], Trajectory],
    records: dict[str, SampleRecord],
    cache_path: Path | None = None,
) -> int:
    """Ask the judge about samples the rules could not read (or, in mode 'wrong', also rule-wrong ones).

    Verdicts are cached on disk, so re-scoring a finished run asks nothing twice. Returns the number of samples judged.
    """
    from codedance_cli.rewards.judge_client import JudgeClient

    wanted = [s for s in scored if s.prediction is None or (judge_config.mode == "wrong" and not s.correct)]
    if not wanted:
        return 0
    judge = JudgeClient(judge_config.endpoint, model=judge_config.model, concurrency=judge_config.concurrency, cache=cache_path)

    async def ask(sample: ScoredSample) -> None:
        benchmark = benchmarks[sample.benchmark]
        task = tasks[(sample.benchmark, sample.task_id)]
        record = records[f"{sample.benchmark}/{sample.task_id}#{sample.sample}"]
        reference = task.ground_truth or ""
        if (option := reference_option(task)) is not None:
            reference = f"{reference}. {option}"
        verdict = await judge.judge(task.question, reference, benchmark.response_text(record.trajectory))
        sample.judged = True
        if verdict.correct:
            sample.correct = True
            # vote together with rule-correct samples: the judged answer is the reference's canonical form
            sample.prediction = benchmark.extract(task.ground_truth or "", task) or task.ground_truth

    try:
        await asyncio.gather(*(ask(sample) for sample in wanted))
    finally:
        await judge.aclose()
    return len(wanted)


def majority_vote(benchmark: str, task_id: str, samples: list[ScoredSample]) -> TaskResult:
    """Most common readable prediction (ties: the one seen first); unreadable samples do not vote."""
    samples = sorted(samples, key=lambda s: s.sample)
    counts = Counter(s.prediction for s in samples if s.prediction is not None)
    vote = None
    if counts:
        best = max(counts.values())
        vote = next(s.prediction for s in samples if s.prediction is not None and counts[s.prediction] == best)
    correct = any(s.correct for s in samples if s.prediction == vote) if vote is not None else False
    return TaskResult(benchmark, task_id, samples[0].category, vote, correct, samples)


def _share(values: list[bool]) -> float:
    return sum(values) / len(values) if values else 0.0


def read_off(samples: list[ScoredSample]) -> float | None:
    """Of the samples whose code printed the reference answer, the share answered right (None: none printed it).

    Accuracy mixes two skills: writing code that finds the answer (printed %) and carrying what it printed into the
    answer. This is the second alone: a model at 100 % printed and 46 % read-off finds the value and then ignores it.
    """
    printed = [s.correct for s in samples if s.printed_reference]
    return _share(printed) if printed else None


def summarize(benchmark: Benchmark, results: list[TaskResult], tasks: dict[str, Trajectory]) -> dict[str, Any]:
    """Everything the table, report and plots show for one benchmark."""
    samples = [s for result in results for s in result.samples]
    by_category: dict[str, list[bool]] = defaultdict(list)
    samples_by_category: dict[str, list[ScoredSample]] = defaultdict(list)
    for result in results:
        by_category[result.category].append(result.correct)
        samples_by_category[result.category] += result.samples
    calls = sum(s.tool_calls for s in samples)
    failed = sum(s.failed_calls for s in samples)
    return {
        "name": benchmark.name,
        "items": len(results),
        "samples": len(samples),
        "accuracy": _share([r.correct for r in results]),
        "headline": benchmark.headline({r.task_id: r.correct for r in results}, tasks),
        "sample_accuracy": _share([s.correct for s in samples]),
        "pass_at_n": _share([any(s.correct for s in r.samples) for r in results]),
        "categories": {
            name: {
                "items": len(values), "accuracy": _share(values),
                "printed_reference": _share([s.printed_reference for s in samples_by_category[name]]),
                "read_off": read_off(samples_by_category[name]),
            }
            for name, values in sorted(by_category.items())
        },
        "printed_reference": _share([s.printed_reference for s in samples]),
        "read_off": read_off(samples),
        "tool_calls_per_sample": calls / len(samples) if samples else 0.0,
        "tool_calls_histogram": dict(sorted(Counter(s.tool_calls for s in samples).items())),
        "tool_calls": calls,
        "failed_calls": failed,
        "exec_failure_rate": failed / calls if calls else 0.0,
        "format": {
            "code_block": _share([s.has_code for s in samples]),
            "code_ran": _share([s.code_ran for s in samples]),
            "answer_tag": _share([s.answer_tagged for s in samples]),
            "adherence": _share([s.format_ok for s in samples]),
        },
        "unreadable": _share([s.prediction is None for s in samples]),
        "judged": sum(s.judged for s in samples),
        "mean_turns": sum(s.turns for s in samples) / len(samples) if samples else 0.0,
        "mean_seconds": sum(s.seconds for s in samples) / len(samples) if samples else 0.0,
        "stop_reasons": dict(sorted(Counter(str(s.stop_reason) for s in samples).items())),
    }


def sample_rows(results: list[TaskResult]) -> list[dict[str, Any]]:
    """Flat per-sample rows (for results.json)."""
    return [{**asdict(s), "vote": r.vote, "vote_correct": r.correct} for r in results for s in r.samples]
