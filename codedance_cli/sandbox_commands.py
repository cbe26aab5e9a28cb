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
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder for produced images (default: a new temp folder).")] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Wall-clock limit for the cell, seconds.")] = 15.0,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")] = False,
) -> None:
    """Execute SCRIPT in a fresh session and print the observation; produced images are saved as PNG files."""
    from codedance_cli.errors import BadInput
    from codedance_cli.recipes.common import DockerSandboxConfig, SandboxConfig
    from codedance_cli.sandbox.by_hand import report, run_script, save_images

    if backend not in ("local", "docker"):
        raise BadInput(f"--backend: expected local or docker, got {backend!r}")
    config = SandboxConfig(backend=backend, workers=1, timeout_s=timeout, docker=DockerSandboxConfig(pool_size=1))
    observation = run_script(script, list(image or []), config)
    report(observation, save_images(observation, out), as_json)
    if not observation.ok:
        raise typer.Exit(1)


@app.command("build-image")
def build_image(
    method: Annotated[str, typer.Option(help="auto, rootfs (mmdebstrap/debootstrap + docker import, no registry) or dockerfile.")] = "auto",
    image: Annotated[str, typer.Option(help="Image name to build.")] = "codedance-sandbox:latest",
    force: Annotated[bool, typer.Option(
        "--force", help="Rebuild even if the image holds the current worker (rootfs keeps its cached Debian base layer)."
    )] = False,
    python_image: Annotated[str | None, typer.Option(
        help="Base image for --method dockerfile (default python:3.11-slim-bookworm)."
    )] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable result on stdout.")] = False,
) -> None:
    """Build the sandbox Docker image (skipped when it already holds this checkout's worker package)."""
    import json
    from dataclasses import asdict

    from codedance_cli.console import make_console

    from codedance_cli.errors import BadInput
    from codedance_cli.sandbox.image import build_image as build

    if method not in ("auto", "rootfs", "dockerfile"):
        raise BadInput(f"--method: expected auto, rootfs or dockerfile, got {method!r}")
    console = make_console(stderr=True)
    with console.status(f"building {image}") as status:
        result = build(image, method, force,  # type: ignore[arg-type]
                       on_line=lambda line: status.update(f"building {image}: {line[:100]}"), python_image=python_image)
    if as_json:
        print(json.dumps(asdict(result)))
    else:
        verb = f"built in {result.seconds:g} s" if result.built else "up to date"
        details = f"{result.method}, {result.size_mb:g} MB, worker {result.worker_sha256[:12]}"
        console.print(f"{result.image} {verb} ({details})", highlight=False)
