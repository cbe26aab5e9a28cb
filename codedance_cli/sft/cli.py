"""CLI entry for `codedance sft`: validates the recipe, then runs the stage."""

from __future__ import annotations

from codedance_cli.cli_common import DryRunOpt, RecipeArg, SetOpt, run_stage


def command(recipe: RecipeArg, set: SetOpt = None, dry_run: DryRunOpt = False) -> None:
    """Cold-start SFT through ms-swift."""
    run_stage("sft", recipe, set, dry_run)
