"""The `codedance synth` stage: procedural or teacher synthesis into a resumable trajectory dataset."""

from __future__ import annotations

import asyncio
import json

from rich.console import Console

from codedance_cli.common.progress import progress_bar
from codedance_cli.console import make_console
from codedance_cli.errors import BadInput
from codedance_cli.recipes.synth import SynthRecipe
from codedance_cli.synth.summary import SynthSummary


def run(recipe: SynthRecipe, *, dry_run: bool = False, json_output: bool = False) -> SynthSummary | None:
    """Validate what the run needs, then synthesize; prints a summary table (or JSON)."""
    console = make_console(stderr=json_output)
    _check(recipe, inputs_must_exist=not dry_run)
    if dry_run:
        plan = _plan(recipe)
        if json_output:
            print(json.dumps(plan, indent=2))
        else:
            console.print_json(json.dumps(plan))
        return None
    summary = asyncio.run(_run(recipe, console))
    if json_output:
        print(json.dumps(summary.as_dict(), indent=2))
    else:
        summary.print(console)
    return summary


def _check(recipe: SynthRecipe, inputs_must_exist: bool = True) -> None:
    from codedance_cli.loop.prompts import check_version
    from codedance_cli.procedural.registry import family_names

    check_version(recipe.loop.prompt_version)
    family_names(recipe.families)
    if recipe.generator == "teacher" and recipe.teacher is None:
        raise BadInput("synth recipe: field 'teacher': required when generator is 'teacher'")
    if inputs_must_exist and recipe.input is not None and not recipe.input.path.exists():
        raise BadInput(f"synth recipe: field 'input.path': {recipe.input.path} does not exist")


def _plan(recipe: SynthRecipe) -> dict:
    plan = {
        "generator": recipe.generator,
        "output": str(recipe.output),
        "items": recipe.num_items if recipe.input is None else f"from {recipe.input.path} ({recipe.input.format})",
        "seed": recipe.seed,
        "families": recipe.families or "all",
        "prompt_version": recipe.loop.prompt_version,
        "sandbox": recipe.sandbox.backend,
    }
    if recipe.generator == "teacher" and recipe.teacher is not None:
        plan.update(teacher=recipe.teacher.model_dump(mode="json"), teacher_template=recipe.teacher_template,
                    samples_per_item=recipe.samples_per_item, judge=recipe.judge.endpoint if recipe.judge else None)
    return plan


async def _run(recipe: SynthRecipe, console: Console) -> SynthSummary:
    from codedance_cli.sandbox import create_sandbox

    total = recipe.num_items if recipe.input is None else None
    if recipe.input is not None and recipe.input.limit is not None:
        total = recipe.input.limit
    if total is not None:
        total *= recipe.samples_per_item if recipe.generator == "teacher" else 1
    with progress_bar("synth", console) as progress:
        bar = progress.add_task(recipe.generator, total=total)

        def advance(n: int) -> None:
            progress.advance(bar, n)

        async with create_sandbox(recipe.sandbox) as sandbox:
            if recipe.generator == "procedural":
                from codedance_cli.synth.procedural_flow import synth_procedural

                return await synth_procedural(recipe, sandbox, advance)
            return await _run_teacher(recipe, sandbox, advance)


async def _run_teacher(recipe: SynthRecipe, sandbox, advance) -> SynthSummary:
    from codedance_cli.clients import create_client
    from codedance_cli.synth.teacher_flow import synth_teacher

    assert recipe.teacher is not None
    client = create_client(recipe.teacher, concurrency=recipe.loop.concurrency)
    judge = None
    if recipe.judge is not None:
        from codedance_cli.rewards.judge_client import JudgeClient

        judge = JudgeClient(recipe.judge.endpoint, recipe.judge.model, concurrency=recipe.judge.concurrency,
                            cache=recipe.output / "judge_cache.jsonl")
    try:
        return await synth_teacher(recipe, client, sandbox, judge, advance)
    finally:
        for closer in (getattr(client, "aclose", None), getattr(judge, "aclose", None)):
            if closer is not None:
                await closer()
