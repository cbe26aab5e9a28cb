"""`codedance judge serve`: serve the judge (or any) model behind an OpenAI-compatible API."""

from __future__ import annotations

import typer

from codedance_cli.cli_common import DryRunOpt, RecipeArg, SetOpt, run_stage

app = typer.Typer(help="Serve the judge model (vllm serve, or transformers serve as the embedded default).", no_args_is_help=True)


@app.command("serve")
def serve(recipe: RecipeArg, set: SetOpt = None, dry_run: DryRunOpt = False) -> None:
    """Start the server, wait until healthy, print the base URL to export; Ctrl-C stops it."""
    run_stage("judge", recipe, set, dry_run)
