"""`codedance recipe ...`: the command face of the recipes leaf (check, ls, cp).

It sits beside `cli.py`, not inside `recipes/`, so the leaf never imports the CLI plumbing (`cli_common`).
"""

from __future__ import annotations

import json as jsonlib
from typing import Annotated

import typer
import yaml
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table

from codedance_cli.cli_common import JsonOpt, RecipeArg, SetOpt

app = typer.Typer(help="Validate and explain recipes.", no_args_is_help=True)


@app.command("check")
def check(
    recipe: RecipeArg,
    set: SetOpt = None,
    json: JsonOpt = False,
    explain: Annotated[bool, typer.Option("--explain", help="Also list every field with its description.")] = False,
) -> None:
    """Validate RECIPE and print the fully resolved recipe."""
    from codedance_cli.recipes import load_recipe

    resolved = load_recipe(recipe, set or [])
    data = resolved.model_dump(mode="json")
    if json:
        typer.echo(jsonlib.dumps(data, indent=2))
        return
    console = Console()
    console.print(f"[green]ok[/] {recipe} ([bold]{resolved.stage}[/] recipe)")
    console.print(Syntax(yaml.safe_dump(data, sort_keys=False), "yaml"))
    if explain:
        from codedance_cli.recipes.fields import describe_fields

        table = Table("field", "type", "description")
        for name, annotation, description in describe_fields(type(resolved)):
            table.add_row(name, annotation, description)
        console.print(table)
