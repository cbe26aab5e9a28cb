"""Options and plumbing shared by the stage commands, so each stage's CLI is a few lines."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated, Any

import typer

RECIPE_HELP = "YAML recipe file, or the name of a bundled recipe such as nano/sft (see `codedance recipe ls`)."
RecipeArg = Annotated[Path, typer.Argument(help=RECIPE_HELP, show_default=False)]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a recipe field: --set train.learning_rate=1e-5 (repeatable)."),
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print what would run (exact commands and environment) and exit.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]


def run_stage(stage: str, recipe_path: Path, sets: list[str] | None, dry_run: bool, **extra: Any) -> Any:
    """Load and validate the recipe for `stage`, then hand it to `codedance_cli.<stage>.run`.

    Stage packages are imported only here, so `codedance --help` never imports torch.
    """
    from codedance_cli.recipes import load_recipe

    recipe = load_recipe(recipe_path, sets or [], expect_stage=stage)
    check_models(recipe, str(recipe_path), dry_run)
    module = importlib.import_module(f"codedance_cli.{stage}.run")
    return module.run(recipe, dry_run=dry_run, **extra)


def check_models(recipe: Any, source: str, dry_run: bool) -> None:
    """A model folder that does not exist stops a run here, naming the recipe and field; a dry run only warns.

    Before this, the path reached the engine as a hub "repo id" and failed minutes later with a hub validation message.
    """
    from rich.console import Console
    from rich.markup import escape

    from codedance_cli.errors import BadInput
    from codedance_cli.recipes.model_paths import missing_model_folders

    problems = missing_model_folders(recipe, source)
    if problems and not dry_run:
        raise BadInput(problems[0] + (f" [+{len(problems) - 1} more]" if len(problems) > 1 else ""))
    for problem in problems:
        Console(stderr=True).print(f"[yellow]warning:[/] {escape(problem)}", highlight=False, soft_wrap=True)
