"""`codedance infer`: one question, one image, the whole trajectory shown."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from codedance_cli.cli_common import DryRunOpt, JsonOpt, SetOpt, check_models


def command(
    question: Annotated[str, typer.Argument(help="The question to ask about the image.")],
    image: Annotated[list[Path], typer.Option("--image", "-i", help="Input image (repeatable).")],
    recipe: Annotated[Path, typer.Option("--recipe", "-r", help="Infer recipe: a file or a bundled name.")] = Path("nano/infer"),
    model: Annotated[str | None, typer.Option("--model", "-m", help="Endpoint URL or local model folder (overrides the recipe).")] = None,
    set: SetOpt = None,
    json: JsonOpt = False,
    html: Annotated[Path | None, typer.Option("--html", help="Write a self-contained HTML page of the trajectory.")] = None,
    dry_run: DryRunOpt = False,
) -> None:
    """Run one trajectory against a model and show reasoning, code, observations and produced images.

    --json prints the trajectory (images base64-encoded, plus the paths they were saved to).
    """
    from codedance_cli.infer.run import run, with_model_override
    from codedance_cli.recipes import load_recipe

    loaded = with_model_override(load_recipe(recipe, set or [], expect_stage="infer"), model)
    check_models(loaded, str(recipe), dry_run)
    run(loaded, dry_run=dry_run, question=question, images=image, as_json=json, html=html)
