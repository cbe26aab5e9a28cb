"""`codedance infer`: one question, one image, the whole trajectory shown."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from codedance_cli.cli_common import JsonOpt, SetOpt


def command(
    question: Annotated[str, typer.Argument(help="The question to ask about the image.")],
    image: Annotated[list[Path], typer.Option("--image", "-i", help="Input image (repeatable).")],
    recipe: Annotated[Path, typer.Option("--recipe", "-r", help="Infer recipe.")] = Path("recipes/nano/infer.yaml"),
    model: Annotated[str | None, typer.Option("--model", "-m", help="Endpoint URL or local model folder (overrides the recipe).")] = None,
    set: SetOpt = None,
    json: JsonOpt = False,
    html: Annotated[Path | None, typer.Option("--html", help="Write a self-contained HTML page of the trajectory.")] = None,
) -> None:
    """Run one trajectory against a model and show reasoning, code, observations and produced images."""
    from codedance_cli.errors import StageNotBuilt

    raise StageNotBuilt("codedance infer is not built yet (issue #4); nothing was run")
