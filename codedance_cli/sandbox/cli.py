"""`codedance sandbox`: try the sandbox by hand, build the Docker image."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Run code in the sandbox by hand; build the production image.", no_args_is_help=True)


@app.command("run")
def run(
    script: Annotated[Path, typer.Argument(help="Python file to execute as one cell.")],
    image: Annotated[list[Path] | None, typer.Option("--image", "-i", help="Input image (repeatable).")] = None,
    backend: Annotated[str, typer.Option(help="local or docker.")] = "local",
) -> None:
    """Execute SCRIPT in a fresh session and print the observation."""
    from codedance_cli.errors import StageNotBuilt

    raise StageNotBuilt("codedance sandbox run is not built yet (issue #3)")


@app.command("build-image")
def build_image() -> None:
    """Build the sandbox Docker image (Dockerfile with a registry, debootstrap offline)."""
    from codedance_cli.errors import StageNotBuilt

    raise StageNotBuilt("codedance sandbox build-image is not built yet (issue #3)")
