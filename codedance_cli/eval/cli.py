"""CLI entry for `codedance eval`: validates the recipe, then runs the stage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from codedance_cli.cli_common import RECIPE_HELP, DryRunOpt, JsonOpt, SetOpt, run_stage


def command(
    recipe: Annotated[Path | None, typer.Argument(help=RECIPE_HELP, show_default=False)] = None,
    set: SetOpt = None,
    dry_run: DryRunOpt = False,
    json: JsonOpt = False,
    restart: Annotated[bool, typer.Option("--restart", help="Discard samples.jsonl in output_dir and start over.")] = False,
    list_benchmarks: Annotated[bool, typer.Option("--list", help="List registered benchmarks and their options, then exit.")] = False,
    baseline: Annotated[
        Path | None,
        typer.Option("--baseline", help="An earlier eval's output_dir (e.g. before SFT, or mode: direct): print and report the change."),
    ] = None,
) -> None:
    """Run benchmarks through the tool loop (or directly, mode: direct) and write results.json, report.md, plots and viewer.html.

    Resumes from output_dir/samples.jsonl after an interruption.
    """
    if list_benchmarks:
        list_registered(json)
        return
    if recipe is None:
        raise typer.BadParameter("missing RECIPE (or use --list)", param_hint="RECIPE")
    run_stage("eval", recipe, set, dry_run, restart=restart, json_output=json, source=str(recipe), baseline=baseline)


def list_registered(as_json: bool) -> None:
    """Print the benchmark registry: name, answer type, hub id, options."""
    import json as jsonlib

    from codedance_cli.console import make_console
    from rich.table import Table

    from codedance_cli.eval.benchmarks import registry
    from codedance_cli.recipes.fields import describe_fields

    rows = [
        {
            "name": name,
            "description": cls.description,
            "answer_type": cls.answer_type,
            "hub_id": cls.hub_id,
            "options": {field: f"{kind}: {text}" for field, kind, text in describe_fields(cls.Options)},
        }
        for name, cls in registry().items()
    ]
    if as_json:
        typer.echo(jsonlib.dumps(rows, indent=2))
        return
    table = Table("benchmark", "answer", "hub dataset", "options")
    for row in rows:
        table.add_row(
            f"[bold]{row['name']}[/]\n[dim]{row['description']}[/]",
            row["answer_type"],
            row["hub_id"] or "-",
            "\n".join(row["options"]) or "-",
        )
    console = make_console()
    console.print(table)
    console.print("Options are set per benchmark in the recipe (benchmarks[].options); `--list --json` explains each.")
