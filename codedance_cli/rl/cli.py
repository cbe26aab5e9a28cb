"""CLI entry for `codedance rl`: validates the recipe, then runs the stage."""

from __future__ import annotations

from codedance_cli.cli_common import DryRunOpt, RecipeArg, SetOpt, run_stage


def command(recipe: RecipeArg, set: SetOpt = None, dry_run: DryRunOpt = False) -> None:
    """RL with the balanced adaptive tool-call reward (verl or ms-swift GRPO)."""
    run_stage("rl", recipe, set, dry_run)
