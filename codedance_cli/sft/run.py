"""The `codedance sft` stage: check inputs, export trajectories for ms-swift, run `swift sft`, link `last`.

Read top to bottom: nothing starts before the model and dataset are known to exist; the
dataset export is resumable and reused; the engine runs as a subprocess with its log
kept in OUTPUT_DIR/swift.log; OUTPUT_DIR/last points at the final checkpoint.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from codedance_cli.console import make_console
from codedance_cli.errors import BadInput, EngineFailed
from codedance_cli.recipes.sft import SftRecipe
from codedance_cli.sft.command import resolve_model, swift_args, swift_env, swift_launcher
from codedance_cli.sft.progress import TrainLog, follow


@dataclass
class SftResult:
    """What a finished (or dry) run produced."""

    command: list[str]
    env: dict[str, str]
    dataset_jsonl: Path
    checkpoint: Path | None = None
    losses: list[float] | None = None


def export_dir(recipe: SftRecipe) -> Path:
    return Path(recipe.export_dir) if recipe.export_dir is not None else Path(recipe.output_dir) / "data"


def check_dataset(recipe: SftRecipe) -> None:
    from codedance_cli.data.sources import check_dataref

    check_dataref(recipe.dataset, "dataset.path")


def run(recipe: SftRecipe, *, dry_run: bool = False, console: Console | None = None) -> SftResult:
    console = console or make_console(stderr=True)
    model = resolve_model(recipe.model)
    if dry_run:  # the plan does not need the data; say what is missing instead of refusing
        try:
            check_dataset(recipe)
        except BadInput as exc:
            console.print(f"[yellow]warning:[/] {exc}", highlight=False, soft_wrap=True)
    else:
        check_dataset(recipe)
    jsonl = export_dir(recipe) / "train.jsonl"
    env = swift_env(recipe)
    launcher = recipe.swift_command if dry_run else swift_launcher(recipe)
    command = swift_args(recipe, model, jsonl.resolve(), launcher)
    if dry_run:
        print_plan(command, env, recipe)
        return SftResult(command, env, jsonl)

    from codedance_cli.data.export_swift import count_lines, export_swift

    jsonl = export_swift(recipe.dataset, export_dir(recipe), prompt_version=recipe.prompt_version, only_correct=recipe.only_correct)
    console.print(f"[green]exported[/] {count_lines(jsonl)} trajectories -> {jsonl}", highlight=False)
    output_dir = Path(recipe.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    log = launch(command, env, output_dir / "swift.log", console)
    checkpoint = link_last(output_dir, log)
    summary = f"{len(log.losses)} logged steps, loss {log.losses[0]:.4f} -> {log.losses[-1]:.4f}" if log.losses else "no loss logged"
    console.print(f"[green]done[/] {summary}; checkpoint {output_dir / 'last'} -> {checkpoint.name}", highlight=False)
    return SftResult(command, env, jsonl, checkpoint, log.losses)


def print_plan(command: list[str], env: dict[str, str], recipe: SftRecipe) -> None:
    """The exact environment and command, shell-ready, on stdout."""
    print(f"# export {recipe.dataset.path} -> {export_dir(recipe) / 'train.jsonl'} (ms-swift jsonl + images)")
    for key, value in env.items():
        print(f"export {key}={shlex.quote(value)}")
    # one `--flag value` per line; the continuations keep it one exact shell command
    print(" \\\n    ".join(shlex.join(command[i:i + 2]) for i in range(0, len(command), 2)))


def launch(command: list[str], env: dict[str, str], log_path: Path, console: Console) -> TrainLog:
    """Run `swift sft` to the end; EngineFailed (with the log's last lines) on a non-zero exit."""
    full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    try:
        process = subprocess.Popen(command, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   errors="replace", bufsize=1)
    except OSError as exc:
        raise EngineFailed(f"could not start {command[0]}: {exc}") from None
    try:
        log = follow(process, log_path, console)
    except KeyboardInterrupt:
        process.terminate()
        process.wait(timeout=30)
        raise
    code = process.wait()
    if code != 0:
        hint = next((line for line in reversed(log.tail) if "Error" in line or "error" in line), log.tail[-1] if log.tail else "")
        raise EngineFailed(f"swift sft exited with {code}: {hint.strip()[:300]} (full log: {log_path})")
    return log


def link_last(output_dir: Path, log: TrainLog) -> Path:
    """Point OUTPUT_DIR/last at the final checkpoint (atomic symlink swap) and return the checkpoint."""
    checkpoint = Path(log.last_checkpoint) if log.last_checkpoint else None
    if checkpoint is None or not checkpoint.is_dir():
        candidates = sorted(output_dir.glob("checkpoint-*"), key=lambda p: int(p.name.rsplit("-", 1)[-1]))
        if not candidates:
            raise EngineFailed(f"swift sft finished but wrote no checkpoint-* under {output_dir} (see {output_dir / 'swift.log'})")
        checkpoint = candidates[-1]
    link, tmp = output_dir / "last", output_dir / ".last.tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(checkpoint.name)
    os.replace(tmp, link)
    (output_dir / "sft_summary.json").write_text(json.dumps(
        {"checkpoint": str(checkpoint), "losses": log.losses, "steps": len(log.records)}, indent=2) + "\n")
    return checkpoint
