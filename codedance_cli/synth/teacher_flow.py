"""Teacher synthesis: a served model solves items through the tool loop; only verified trajectories are kept.

Kept means: the loop ended with an answer, every code step ran without error (and
at least one ran, when `require_code`), and the answer matches the ground truth by
rule (`codedance_cli.rewards.matching`) or, where the rule says no and a judge is
configured, by the judge. The teacher sees the CodeDance family instruction; the
stored trajectory has the plain question.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator

from codedance_cli.clients.base import ModelClient
from codedance_cli.data.sources import iter_dataref
from codedance_cli.loop.runner import run_many
from codedance_cli.procedural.registry import iter_tasks
from codedance_cli.recipes.synth import SynthRecipe
from codedance_cli.rewards.matching import answers_match
from codedance_cli.sandbox.base import Sandbox
from codedance_cli.synth.summary import SynthSummary
from codedance_cli.synth.templates import teacher_task, template_name_for
from codedance_cli.trajectory.schema import Trajectory
from codedance_cli.trajectory.store import TrajectoryWriter


def source_tasks(recipe: SynthRecipe) -> Iterator[Trajectory]:
    """The items to solve: the input dataset (turns dropped) or procedural tasks."""
    if recipe.input is None:
        yield from iter_tasks(recipe.num_items, recipe.seed, recipe.families)
        return
    limit = recipe.input.limit if recipe.input.limit is not None else recipe.num_items
    for task in itertools.islice(iter_dataref(recipe.input), limit):
        yield task.model_copy(update={"turns": [], "final_answer": None, "stop_reason": None})


def expanded(tasks: Iterator[Trajectory], samples: int) -> Iterator[Trajectory]:
    """Each task `samples` times, with distinct ids when more than one (the writer dedups by id)."""
    for task in tasks:
        if samples == 1:
            yield task
            continue
        for k in range(samples):
            copy = task.model_copy(update={"task_id": f"{task.task_id}#t{k}"})
            copy.metadata = {**task.metadata, "source_task_id": task.task_id, "sample": k}
            yield copy


def rejection_reason(traj: Trajectory, require_code: bool) -> str | None:
    """Why a teacher trajectory cannot be training data (before answer checking), or None."""
    if traj.stop_reason != "answer" or traj.final_answer is None:
        return f"no_answer:{traj.stop_reason}"
    if any(turn.code is not None and (turn.observation is None or not turn.observation.ok) for turn in traj.turns):
        return "code_failed"
    if require_code and traj.num_tool_calls == 0:
        return "no_code"
    if traj.ground_truth is None:
        return "no_ground_truth"
    return None


async def answer_verdict(traj: Trajectory, judge) -> tuple[bool, bool]:
    """(correct, decided_by_judge)."""
    assert traj.final_answer is not None and traj.ground_truth is not None
    if answers_match(traj.final_answer, traj.ground_truth, traj.answer_type, traj.choices):
        return True, False
    if judge is None or traj.answer_type == "choice":
        return False, False
    verdict = await judge.judge(traj.question, traj.ground_truth, traj.final_answer)
    return bool(verdict.correct), bool(verdict.correct)


async def synth_teacher(
    recipe: SynthRecipe,
    client: ModelClient,
    sandbox: Sandbox,
    judge=None,
    on_progress: Callable[[int], None] | None = None,
) -> SynthSummary:
    """Run teacher synthesis into `recipe.output`; resumes by skipping ids kept (or rejected) before."""
    started = time.perf_counter()
    summary = SynthSummary(generator="teacher", output=recipe.output)
    plain: dict[str, Trajectory] = {}
    with TrajectoryWriter(recipe.output, shard_size=64) as kept, _optional_writer(recipe) as rejected:
        done = kept.done_ids | (rejected.done_ids if rejected is not None else set())

        def to_teacher() -> Iterator[Trajectory]:
            for task in expanded(source_tasks(recipe), recipe.samples_per_item):
                summary.requested += 1
                if task.task_id in done:
                    summary.already_done += 1
                    if on_progress:
                        on_progress(1)
                    continue
                template = template_name_for(task, recipe.teacher_template)
                task.metadata = {**task.metadata, "teacher_template": template}
                plain[task.task_id] = task
                yield teacher_task(task, template)

        async for traj in run_many(to_teacher(), client, sandbox, recipe.loop):
            original = plain.pop(traj.task_id)
            traj.question = original.question
            traj.metadata = {**traj.metadata, "source": traj.metadata.get("source", "teacher"), "synth": "teacher"}
            if recipe.teacher is not None:
                traj.metadata["teacher"] = recipe.teacher.served_name or recipe.teacher.endpoint or recipe.teacher.path
            reason = rejection_reason(traj, recipe.require_code)
            by_judge = False
            if reason is None:
                correct, by_judge = await answer_verdict(traj, judge)
                reason = None if correct else "wrong_answer"
            if reason is None:
                traj.metadata["verified_by"] = "judge" if by_judge else "rule"
                kept.write(traj)
                summary.kept += 1
                summary.judge_rescued += int(by_judge)
                summary.by_family[traj.metadata["teacher_template"]] += 1
            else:
                summary.dropped[reason] += 1
                if rejected is not None:
                    traj.metadata["rejected"] = reason
                    rejected.write(traj)
            if on_progress:
                on_progress(1)
    summary.seconds = time.perf_counter() - started
    return summary


class _NoWriter:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _optional_writer(recipe: SynthRecipe):
    return TrajectoryWriter(recipe.rejected_output, shard_size=64) if recipe.rejected_output else _NoWriter()
