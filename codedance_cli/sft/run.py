"""The `codedance sft` stage: check inputs, export trajectories for ms-swift, run `swift sft`, link `last`.

Read top to bottom: nothing starts before the model and dataset are known to exist; the
dataset export is resumable and reused; the engine runs as a subprocess with its log
kept in OUTPUT_DIR/swift.log and its steps followed in OUTPUT_DIR/logging.jsonl;
OUTPUT_DIR/last points at the final checkpoint.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from codedance_cli.common.atomic import atomic_write_text
from codedance_cli.console import make_console
from codedance_cli.engines.checkpoints import link_last, require_checkpoint
from codedance_cli.engines.swift.args import resolve_model, swift_executable
from codedance_cli.engines.swift.launch import run_swift
from codedance_cli.engines.swift.sft_command import swift_args, swift_env
from codedance_cli.errors import BadInput
from codedance_cli.recipes.sft import SftRecipe


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
    model = resolve_model(recipe.model.require_path("model"))
    if dry_run:  # the plan does not need the data; say what is missing instead of refusing
        try:
            check_dataset(recipe)
        except BadInput as exc:
            console.print(f"[yellow]warning:[/] {exc}", highlight=False, soft_wrap=True)
    else:
        check_dataset(recipe)
    jsonl = export_dir(recipe) / "train.jsonl"
    env = swift_env(recipe)
    launcher = recipe.swift_command if dry_run else swift_executable(recipe.swift_command)
    command = swift_args(recipe, model, jsonl.resolve(), launcher)
    if dry_run:
        print_plan(command, env, recipe)
        return SftResult(command, env, jsonl)

    from codedance_cli.data.export_swift import count_lines, export_swift

    jsonl = export_swift(recipe.dataset, export_dir(recipe), prompt_version=recipe.prompt_version, only_correct=recipe.only_correct)
    console.print(f"[green]exported[/] {count_lines(jsonl)} trajectories -> {jsonl}", highlight=False)
    output_dir = Path(recipe.output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    log = run_swift(command, env, log_path=output_dir / "swift.log", logging_jsonl=output_dir / "logging.jsonl",
                    label="swift sft", console=console)
    checkpoint = require_checkpoint(output_dir, log.last_checkpoint, "swift sft")
    link_last(output_dir, checkpoint)
    losses = log.losses
    write_summary(output_dir, checkpoint, losses)
    summary = f"{len(losses)} logged steps, loss {losses[0]:.4f} -> {losses[-1]:.4f}" if losses else "no loss logged"
    console.print(f"[green]done[/] {summary}; checkpoint {output_dir / 'last'} -> {checkpoint.name}", highlight=False)
    return SftResult(command, env, jsonl, checkpoint, losses)


def write_summary(output_dir: Path, checkpoint: Path, losses: list[float]) -> None:
    atomic_write_text(output_dir / "sft_summary.json",
                      json.dumps({"checkpoint": str(checkpoint), "losses": losses, "steps": len(losses)}, indent=2) + "\n")


def print_plan(command: list[str], env: dict[str, str], recipe: SftRecipe) -> None:
    """The exact environment and command, shell-ready, on stdout."""
    print(f"# export {recipe.dataset.path} -> {export_dir(recipe) / 'train.jsonl'} (ms-swift jsonl + images)")
    for key, value in env.items():
        print(f"export {key}={shlex.quote(value)}")
    # one `--flag value` per line; the continuations keep it one exact shell command
    print(" \\\n    ".join(shlex.join(command[i:i + 2]) for i in range(0, len(command), 2)))
