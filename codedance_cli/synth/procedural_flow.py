"""Procedural synthesis: generate items, execute their solutions in the sandbox, keep the verified ones.

Items are drawn lazily in a worker thread (drawing is CPU work that would stall
the event loop) while earlier items' code runs in the sandbox; at most
`concurrency` items are in flight and results stream into the writer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import aclosing

from codedance_cli.common.concurrency import bounded_map
from codedance_cli.procedural.registry import family_names, generate_item, task_id_for
from codedance_cli.procedural.solve import SolveResult, solve_item
from codedance_cli.recipes.synth import SynthRecipe
from codedance_cli.sandbox.base import Sandbox
from codedance_cli.synth.summary import SynthSummary
from codedance_cli.trajectory.store import TrajectoryWriter


def pending_indices(recipe: SynthRecipe, done_ids: set[str]) -> list[int]:
    """Item indices whose trajectories are not yet in the output (ids are known without drawing the item)."""
    names = family_names(recipe.families)
    return [i for i in range(recipe.num_items) if task_id_for(recipe.seed, i, names[i % len(names)]) not in done_ids]


async def synth_procedural(recipe: SynthRecipe, sandbox: Sandbox, on_progress: Callable[[int], None] | None = None) -> SynthSummary:
    """Run procedural synthesis into `recipe.output`, resuming from what is there."""
    started = time.perf_counter()
    summary = SynthSummary(generator="procedural", output=recipe.output, requested=recipe.num_items)
    names = family_names(recipe.families)
    version = recipe.loop.prompt_version

    async def solve(index: int) -> SolveResult:
        item = await asyncio.to_thread(generate_item, recipe.seed, index, names)
        try:
            return await solve_item(item, sandbox, recipe.seed, index, version)
        except Exception as exc:  # a sandbox failure drops this item (counted), not the whole run
            return SolveResult(None, f"sandbox_error:{type(exc).__name__}")

    with TrajectoryWriter(recipe.output, shard_size=128) as writer:
        todo = pending_indices(recipe, writer.done_ids)
        summary.already_done = recipe.num_items - len(todo)
        if on_progress and summary.already_done:
            on_progress(summary.already_done)
        async with aclosing(bounded_map(todo, solve, recipe.concurrency)) as solved:
            async for _, result in solved:
                if result.trajectory is not None:
                    writer.write(result.trajectory)
                    summary.kept += 1
                    summary.by_family[result.trajectory.metadata["family"]] += 1
                else:
                    summary.dropped[result.reason or "unknown"] += 1
                if on_progress:
                    on_progress(1)
    summary.seconds = time.perf_counter() - started
    return summary
