"""`codedance recipe check`: validate a recipe and print it resolved (extends and --set applied)."""

from __future__ import annotations

import json as jsonlib
from typing import Annotated, Any

import typer
import yaml
from pydantic import BaseModel
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
        table = Table("field", "type", "description")
        for name, annotation, description in describe_fields(type(resolved)):
            table.add_row(name, annotation, description)
        console.print(table)


def describe_fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted name, type, description) for every field, nested sections expanded."""
    rows: list[tuple[str, str, str]] = []
    for name, field in model.model_fields.items():
        dotted = f"{prefix}{name}"
        nested = _section_model(field.annotation)
        if nested is not None:
            rows.append((dotted, nested.__name__, field.description or ""))
            rows.extend(describe_fields(nested, dotted + "."))
        else:
            rows.append((dotted, _type_name(field.annotation), field.description or ""))
    return rows


def _section_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    args = [a for a in getattr(annotation, "__args__", ()) if a is not type(None)]
    if len(args) == 1 and isinstance(args[0], type) and issubclass(args[0], BaseModel):
        return args[0]
    return None


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
