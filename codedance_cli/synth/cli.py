"""CLI entry for `codedance synth`: validates the recipe, then runs the stage."""

from __future__ import annotations

from codedance_cli.cli_common import DryRunOpt, JsonOpt, RecipeArg, SetOpt, run_stage


def command(recipe: RecipeArg, set: SetOpt = None, dry_run: DryRunOpt = False, json: JsonOpt = False) -> None:
    """Make executable multi-turn trajectories (procedural generator or a teacher model), verified by execution."""
    run_stage("synth", recipe, set, dry_run, json_output=json)
