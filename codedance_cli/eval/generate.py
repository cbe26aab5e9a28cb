"""Producing samples: each pending (item, sample index) through the tool loop, or answered directly without tools.

Samples are handed to `on_sample` the moment they finish (the caller appends them to the
log), so an interruption loses only what was in flight. Both modes keep at most
`loop.concurrency` conversations in flight.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from contextlib import aclosing
from dataclasses import dataclass

from codedance_cli.clients.base import ModelClient
from codedance_cli.common.concurrency import bounded_map
from codedance_cli.eval.samples import SampleRecord, sample_key
from codedance_cli.loop.prompts import DIRECT_VERSION, system_prompt
from codedance_cli.recipes.common import LoopConfig, SandboxConfig
from codedance_cli.loop.grammar import general_answer
from codedance_cli.trajectory.schema import Trajectory, Turn


@dataclass(frozen=True)
class Job:
    """One sample to produce: the benchmark item and which of its n samples."""

    benchmark: str
    task: Trajectory
    sample: int

    @property
    def key(self) -> str:
        return sample_key(self.benchmark, self.task.task_id, self.sample)


def _record(job: Job, trajectory: Trajectory, seconds: float) -> SampleRecord:
    trajectory = trajectory.model_copy(update={"task_id": job.task.task_id, "images": []})
    return SampleRecord(
        benchmark=job.benchmark, task_id=job.task.task_id, sample=job.sample, trajectory=trajectory, seconds=round(seconds, 4)
    )


async def run_tool_mode(
    jobs: Iterable[Job], client: ModelClient, sandbox_config: SandboxConfig, loop: LoopConfig, on_sample: Callable[[SampleRecord], None]
) -> None:
    """Through the think -> code -> execute loop; the sandbox lives as long as the run.

    `jobs` is consumed lazily (the loop pulls a task when a slot frees up), so input images of
    a large high-resolution benchmark are never all in memory at once.
    """
    from codedance_cli.loop.runner import run_many
    from codedance_cli.sandbox import create_sandbox

    by_key: dict[str, Job] = {}
    started: dict[str, float] = {}

    def tasks():
        for job in jobs:
            by_key[job.key] = job
            started[job.key] = time.perf_counter()
            # a unique id per sample, so finished trajectories map back to their job
            yield job.task.model_copy(update={"task_id": job.key})

    async with create_sandbox(sandbox_config) as sandbox:
        async for trajectory in run_many(tasks(), client, sandbox, loop):
            job = by_key.pop(trajectory.task_id)
            on_sample(_record(job, trajectory, time.perf_counter() - started.pop(job.key)))


async def run_direct_mode(jobs: Iterable[Job], client: ModelClient, loop: LoopConfig, on_sample: Callable[[SampleRecord], None]) -> None:
    """One generation per sample, no tools: the baseline the tool loop must beat."""
    from codedance_cli.loop.format import task_messages

    async def one(job: Job) -> None:
        begin = time.perf_counter()
        messages = task_messages(job.task, DIRECT_VERSION)
        result = job.task.model_copy(deep=True)
        result.system_prompt, result.prompt_version = system_prompt(DIRECT_VERSION), DIRECT_VERSION
        try:
            generation = await client.generate(
                messages, max_new_tokens=min(loop.max_new_tokens, loop.max_total_tokens), temperature=loop.temperature, top_p=loop.top_p
            )
        except Exception as exc:  # one failed request is one failed sample, as in the tool loop
            result.stop_reason = "error"
            result.metadata["error"] = f"{type(exc).__name__}: {exc}"[:2000]
        else:
            result.turns = [
                Turn(
                    text=generation.text,
                    prompt_tokens=generation.prompt_tokens,
                    completion_tokens=generation.completion_tokens,
                    generation_s=round(generation.seconds, 4),
                )
            ]
            result.final_answer = general_answer(generation.text)
            result.stop_reason = "answer" if result.final_answer is not None else "max_tokens" if generation.hit_length_limit else "no_code"
        on_sample(_record(job, result, time.perf_counter() - begin))

    async with aclosing(bounded_map(jobs, one, loop.concurrency)) as finished:  # jobs are pulled lazily, like the loop's
        async for _ in finished:
            pass
