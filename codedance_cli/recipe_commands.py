"""`codedance recipe ...`: the command face of the recipes leaf (check, ls, cp).

It sits beside `cli.py`, not inside `recipes/`, so the leaf never imports the CLI plumbing (`cli_common`).
"""

from __future__ import annotations

import json as jsonlib
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.syntax import Syntax
from rich.table import Table

from codedance_cli.cli_common import JsonOpt, RecipeArg, SetOpt
from codedance_cli.console import make_console

app = typer.Typer(help="Validate, explain, list and copy recipes.", no_args_is_help=True)


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
    console = make_console()
    console.print(f"[green]ok[/] {recipe} ([bold]{resolved.stage}[/] recipe)", highlight=False)
    text = yaml.safe_dump(data, sort_keys=False, width=float("inf"))  # yaml would fold long strings at 80 columns
    if console.is_terminal:
        console.print(Syntax(text, "yaml", word_wrap=True))
    else:  # a file or a pipe: the plain YAML, every line whole (Syntax pads or crops to the width)
        console.print(text.rstrip("\n"), markup=False, highlight=False)
    if explain:
        from codedance_cli.recipes.fields import describe_fields

        table = Table("field", "type", "description")
        for column in table.columns:
            column.overflow = "fold"  # a narrow terminal folds long names instead of cutting them with '…'
        for name, annotation, description in describe_fields(type(resolved)):
            table.add_row(name, annotation, description)
        console.print(table)


@app.command("ls")
def ls(json: JsonOpt = False) -> None:
    """List the bundled recipes (usable by name from any folder: `codedance sft nano/sft`)."""
    rows = bundled_rows()
    if json:
        typer.echo(jsonlib.dumps(rows, indent=2))
        return
    table = Table("name", "stage", "description")
    for column in table.columns:
        column.overflow = "fold"
    for row in rows:
        table.add_row(row["name"], row["stage"] or "-", row["description"])
    make_console().print(table)


def bundled_rows() -> list[dict[str, str | None]]:
    """name, stage and description (inherited through `extends:`) of every bundled recipe."""
    from codedance_cli.recipes.bundled import bundled_names, bundled_path
    from codedance_cli.recipes.loader import resolve_extends

    rows: list[dict[str, str | None]] = []
    for name in bundled_names():
        path = bundled_path(name)
        assert path is not None  # listed from the same folder
        data = resolve_extends(path)
        stage = data.get("stage")
        rows.append({"name": name, "stage": None if stage is None else str(stage),
                     "description": str(data.get("description") or ""), "path": str(path)})
    return rows


@app.command("cp")
def cp(
    name: Annotated[str, typer.Argument(help="Bundled recipe name, e.g. nano/sft (see `codedance recipe ls`).", show_default=False)],
    dest: Annotated[Path, typer.Argument(help="File to write, or an existing folder to copy into.", show_default=False)],
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite DEST if it exists.")] = False,
) -> None:
    """Copy a bundled recipe to edit it; a relative `extends:` becomes the bundled name, so the copy works anywhere."""
    from codedance_cli.errors import BadInput
    from codedance_cli.recipes.bundled import bundled_path, normalize_name, portable_text, unknown_recipe

    source = bundled_path(name)
    if source is None:
        raise BadInput(unknown_recipe(name))
    target = dest / source.name if dest.is_dir() else dest
    if target.exists() and not force:
        raise BadInput(f"{target}: already exists; pass --force to overwrite it")
    text, extends = portable_text(source)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    except OSError as exc:
        raise BadInput(f"{target}: cannot write: {exc.strerror or exc}") from None
    note = f" (extends: {extends})" if extends else ""
    typer.echo(f"copied {normalize_name(name)} -> {target}{note}")
