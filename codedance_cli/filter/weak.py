"""Weak-to-strong sampling: how often does a weak model already get an item right?

Items the weak model always solves teach nothing (dropped as trivial); the rest are
stratified by its pass rate into difficulty levels ('easy' / 'medium' / 'hard') for
building RL sets; the RL reward itself measures difficulty online, from each
prompt's own GRPO group (docs/reward.md).
"""

from __future__ import annotations

import asyncio

from codedance_cli.clients.base import ModelClient
from codedance_cli.loop.format import task_messages
from codedance_cli.loop.prompts import DIRECT_VERSION
from codedance_cli.loop.runner import run_trajectory
from codedance_cli.recipes.filter import FilterRecipe
from codedance_cli.rewards.matching import answers_match, extract_answer
from codedance_cli.sandbox.base import Sandbox
from codedance_cli.trajectory.schema import Trajectory


def direct_messages(task: Trajectory) -> list[dict]:
    """The no-tool prompt (the eval's direct mode): system, then the images and the question (options appended)."""
    return task_messages(task, DIRECT_VERSION)


def _correct(prediction: str | None, task: Trajectory) -> bool:
    if not prediction or task.ground_truth is None:
        return False
    return answers_match(prediction, task.ground_truth, task.answer_type, task.choices)


async def _one_sample(task: Trajectory, client: ModelClient, sandbox: Sandbox, recipe: FilterRecipe) -> bool:
    if recipe.weak_mode == "direct":
        generation = await client.generate(direct_messages(task), max_new_tokens=recipe.weak_max_new_tokens,
                                           temperature=recipe.weak_temperature)
        return _correct(extract_answer(generation.text) if "<answer>" in generation.text else None, task)
    config = recipe.loop.model_copy(update={"temperature": recipe.weak_temperature})
    plain = task.model_copy(update={"turns": [], "final_answer": None, "stop_reason": None})
    result = await run_trajectory(plain, client, sandbox, config)
    return _correct(result.final_answer, task)


async def pass_rate(task: Trajectory, client: ModelClient, sandbox: Sandbox, recipe: FilterRecipe) -> tuple[int, int]:
    """(correct, k) over k weak samples, run concurrently."""
    results = await asyncio.gather(*(_one_sample(task, client, sandbox, recipe) for _ in range(recipe.samples_per_item)))
    return sum(results), len(results)


def difficulty_label(rate: float, recipe: FilterRecipe) -> str:
    if rate <= recipe.hard_max_pass_rate:
        return "hard"
    if rate <= recipe.medium_max_pass_rate:
        return "medium"
    return "easy"
