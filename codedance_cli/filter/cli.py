"""CLI entry for `codedance filter`: validates the recipe, then runs the stage."""

from __future__ import annotations

from codedance_cli.cli_common import DryRunOpt, JsonOpt, RecipeArg, SetOpt, run_stage


def command(recipe: RecipeArg, set: SetOpt = None, dry_run: DryRunOpt = False, json: JsonOpt = False) -> None:
    """Weak-to-strong filtering, dedup and re-execution of trajectories; writes a report and a histogram."""
    run_stage("filter", recipe, set, dry_run, json_output=json)
