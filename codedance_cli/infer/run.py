"""The `codedance infer` flow: one question, one model, the whole trajectory shown.

Read top to bottom: check the inputs, build the task, pick the client and the
sandbox, run the loop (printing turns as they arrive), save what the code
produced, then print JSON or write HTML if asked.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError
from rich.console import Console
from rich.rule import Rule

from codedance_cli.console import decoration_width, make_console
from codedance_cli.errors import BadInput
from codedance_cli.recipes.infer import InferRecipe
from codedance_cli.trajectory.schema import Trajectory, Turn


def with_model_override(recipe: InferRecipe, model: str | None) -> InferRecipe:
    """`--model`: an http(s) URL becomes the endpoint; anything else a local folder / hub id."""
    if not model:
        return recipe
    if model.startswith(("http://", "https://")):
        spec = recipe.model.model_copy(update={"endpoint": model, "path": None, "backend": "openai"})
    else:
        if not Path(model).is_dir() and (model.startswith((".", "/", "~")) or model.count("/") != 1):
            raise BadInput(f"--model {model}: not an http(s) endpoint URL and no such model folder")
        spec = recipe.model.model_copy(update={"path": model, "endpoint": None, "backend": "auto" if recipe.model.backend == "openai" else recipe.model.backend})
    return recipe.model_copy(update={"model": spec})


def read_images(paths: list[Path]) -> list[bytes]:
    """Encoded bytes of each input image, checked to be a readable image."""
    if not paths:
        raise BadInput("--image: give at least one input image")
    images = []
    for path in paths:
        if not path.is_file():
            raise BadInput(f"--image {path}: file not found")
        data = path.read_bytes()
        try:
            Image.open(io.BytesIO(data)).verify()
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise BadInput(f"--image {path}: not a readable image ({exc})") from None
        images.append(data)
    return images


def jsonable(value: Any) -> Any:
    """model_dump() output with bytes as base64 strings (pydantic would try UTF-8)."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [jsonable(item) for item in value]
    return value


def trajectory_json(trajectory: Trajectory, image_paths: dict[str, list[str]] | None = None) -> str:
    """The trajectory as JSON: images base64-encoded (self-contained), plus saved paths when known."""
    data = jsonable(trajectory.model_dump())
    if image_paths is not None:
        data["saved_images"] = image_paths
    return json.dumps(data, ensure_ascii=False, indent=1)


def save_produced_images(trajectory: Trajectory, out_dir: Path) -> dict[str, list[str]]:
    """Write every image the code produced as turnN-imgM.png; {turn index: [paths]}."""
    saved: dict[str, list[str]] = {}
    for index, turn in enumerate(trajectory.turns):
        if turn.observation is None:
            continue
        for number, data in enumerate(turn.observation.images):
            out_dir.mkdir(parents=True, exist_ok=True)
            path = out_dir / f"turn{index + 1}-img{number + 1}.png"
            path.write_bytes(data)
            saved.setdefault(str(index), []).append(str(path))
    return saved


def show_turn(console: Console, index: int, trajectory: Trajectory, turn: Turn) -> None:
    """Print one turn as it arrives: reasoning, highlighted code, observation."""
    from rich.panel import Panel
    from rich.syntax import Syntax
    from rich.text import Text

    from codedance_cli.loop.parser import parse_turn

    parsed = parse_turn(turn.text, trajectory.prompt_version or "codedance-v1")
    cost = f"{turn.completion_tokens or 0} tokens, {turn.generation_s or 0:.2f}s"
    console.print(Rule(f"turn {index + 1} [dim]({cost})[/]"), width=decoration_width(console))
    if parsed.reasoning:
        console.print(Text(parsed.reasoning, style="italic"))
    if turn.code is not None:
        widest = max((len(line) for line in turn.code.splitlines()), default=0)
        code_width = None if console.is_terminal or not widest else widest  # piped: whole lines, padded no further
        console.print(Syntax(turn.code, "python", theme="monokai", line_numbers=False, word_wrap=True, code_width=code_width))
    if turn.observation is not None:
        obs = turn.observation
        body = Text(obs.stdout.rstrip() or "")
        if obs.error_type or obs.timed_out:
            body.append(("\n" if obs.stdout.strip() else "") + f"{obs.error_type or 'Timeout'}: {obs.error or ''}", style="red")
        if obs.images:
            body.append(("\n" if len(body) else "") + f"[{len(obs.images)} image(s)]", style="cyan")
        console.print(Panel(body if len(body) else Text("(no output)", style="dim"), title=f"observation {obs.duration_s:.2f}s", expand=False))
    if not parsed.reasoning and turn.code is None and parsed.answer is None:
        console.print(Text(turn.text[:2000], style="dim"))


async def _run_loop(task: Trajectory, recipe: InferRecipe, console: Console | None) -> Trajectory:
    from codedance_cli.clients import create_client
    from codedance_cli.loop.runner import run_trajectory
    from codedance_cli.sandbox import create_sandbox

    client = create_client(recipe.model, concurrency=1)
    try:
        async with create_sandbox(recipe.sandbox) as sandbox:
            on_turn = (lambda traj, turn: show_turn(console, len(traj.turns) - 1, traj, turn)) if console is not None else None
            return await run_trajectory(task, client, sandbox, recipe.loop, on_turn=on_turn)
    finally:
        await client.aclose()


def run(
    recipe: InferRecipe,
    *,
    dry_run: bool = False,
    question: str,
    images: list[Path],
    as_json: bool = False,
    html: Path | None = None,
) -> Trajectory | None:
    """Run one trajectory and show it; returns it (None on --dry-run)."""
    from codedance_cli.clients.factory import resolve_backend
    from codedance_cli.loop.prompts import check_version

    check_version(recipe.loop.prompt_version)
    if not question.strip():
        raise BadInput("QUESTION: empty question")
    task = Trajectory(task_id=time.strftime("infer-%Y%m%d-%H%M%S"), question=question, images=read_images(images))
    backend = resolve_backend(recipe.model)
    where = recipe.model.endpoint if backend == "openai" else recipe.model.path
    if dry_run:
        print(f"model: {backend} {where}\nprompt: {recipe.loop.prompt_version}\nsandbox: {recipe.sandbox.backend}")
        return None
    console = make_console(stderr=as_json)
    console.print(f"[bold]{question}[/]  [dim]({backend}: {where}, {recipe.loop.prompt_version})[/]")
    trajectory = asyncio.run(_run_loop(task, recipe, console))
    out_dir = recipe.output_dir / trajectory.task_id
    saved = save_produced_images(trajectory, out_dir)
    console.print(Rule("result"), width=decoration_width(console))
    for paths in saved.values():
        for path in paths:
            console.print(f"image: {path}")
    answer = trajectory.final_answer if trajectory.final_answer is not None else "(no answer)"
    console.print(f"[bold green]answer:[/] {answer}   [dim]stop: {trajectory.stop_reason}[/]")
    if trajectory.metadata.get("error"):
        console.print(f"[red]error:[/] {trajectory.metadata['error']}")
    if html is not None:
        from codedance_cli.viewer.html import write_html

        console.print(f"html: {write_html(html, [trajectory], title=question)}")  # the page cuts it at a word
    if as_json:
        print(trajectory_json(trajectory, saved))
    return trajectory
