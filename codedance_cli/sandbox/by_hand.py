"""`codedance sandbox run`: one script, one fresh session, the observation printed and its images saved."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from rich.panel import Panel

from codedance_cli.common.atomic import atomic_write_bytes
from codedance_cli.console import make_console
from codedance_cli.errors import BadInput, EngineFailed
from codedance_cli.recipes.common import SandboxConfig
from codedance_cli.sandbox.protocol import WorkerError
from codedance_cli.trajectory.schema import Observation


def run_script(script: Path, images: list[Path], config: SandboxConfig) -> Observation:
    """Execute `script` as one cell in a fresh session with `images` as inputs."""
    if not script.is_file():
        raise BadInput(f"{script}: script not found")
    for image in images:
        if not image.is_file():
            raise BadInput(f"{image}: --image file not found")
    code = script.read_text(encoding="utf-8", errors="replace")

    async def once() -> Observation:
        from codedance_cli.sandbox import create_sandbox

        async with create_sandbox(config) as sandbox:
            async with await sandbox.open_session(list(images)) as session:
                return await session.run(code)

    try:
        return asyncio.run(once())
    except WorkerError as exc:
        raise EngineFailed(f"sandbox ({config.backend}): {exc}") from exc


def save_images(observation: Observation, out_dir: Path | None) -> list[Path]:
    if not observation.images:
        return []
    folder = out_dir or Path(tempfile.mkdtemp(prefix="codedance-sandbox-run-"))
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, data in enumerate(observation.images, start=1):
        paths.append(atomic_write_bytes(folder / f"image_{index:02d}.png", data))
    return paths


def report(observation: Observation, paths: list[Path], as_json: bool) -> None:
    if as_json:
        payload = observation.model_dump(exclude={"images"})
        payload["images"] = [str(p) for p in paths]
        print(json.dumps(payload, indent=2))
        return
    console = make_console()
    status = "ok" if observation.ok else f"[red]{observation.error_type}[/]"
    console.print(f"[bold]status[/] {status}   [bold]duration[/] {observation.duration_s * 1000:.1f} ms"
                  + ("   [yellow]output truncated[/]" if observation.truncated else ""), highlight=False)
    boxed: dict[str, Any] = {"title_align": "left", "expand": console.is_terminal}  # piped: a box as wide as its text, not the canvas
    if observation.stdout:
        console.print(Panel(observation.stdout.rstrip("\n"), title="stdout", **boxed), highlight=False, markup=False)
    if observation.stderr:
        console.print(Panel(observation.stderr.rstrip("\n"), title="stderr", border_style="yellow", **boxed), highlight=False, markup=False)
    if observation.error:
        console.print(Panel(observation.error, title="error", border_style="red", **boxed), highlight=False, markup=False)
    for path in paths:
        console.print(f"image: {path}", highlight=False)
