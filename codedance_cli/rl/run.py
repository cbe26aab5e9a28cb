"""The `codedance rl` stage: recipe -> exported data + engine configs -> verl or ms-swift GRPO.

1. Export the RL items for the engine (verl parquet / ms-swift jsonl), skipped when already newer than the source.
2. Write the reward coefficients and the tool / scheduler settings into the run folder.
3. Launch the engine through its public command line; a non-zero exit is EngineFailed.

verl resumes from its own checkpoints (`trainer.resume_mode=auto`); ms-swift is
given the newest `checkpoint-*` of the run with `--resume_from_checkpoint`.
4. Point `output_dir/last` at the trained model (finalize.py).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from codedance_cli.errors import BadInput, EngineFailed
from codedance_cli.recipes.rl import RlRecipe
from codedance_cli.rl.finalize import latest_swift_checkpoint, latest_verl_step, link_last, verl_merge_command
from codedance_cli.rl.run_files import RunFiles
from codedance_cli.rl.summary import summarize_swift_log, write_summary


@dataclass
class RlPlan:
    """What `codedance rl` runs: the command, the environment it adds, the run folder."""

    engine: str
    command: list[str]
    env: dict[str, str]
    files: RunFiles

    def describe(self) -> str:
        env = "\n".join(f"{key}={shlex.quote(value)}" for key, value in sorted(self.env.items()))
        return f"# engine: {self.engine}\n# environment:\n{env}\n# command:\n{shlex.join(self.command)}"


def plan(recipe: RlRecipe) -> RlPlan:
    """The engine command and environment for `recipe` (pure: writes nothing)."""
    files = RunFiles(recipe.output_dir)
    if recipe.engine == "verl":
        from codedance_cli.loop.prompts import TOOLCALL_VERSION, is_toolcall
        from codedance_cli.rl.verl_engine import verl_command, verl_env

        if not is_toolcall(recipe.loop.prompt_version):
            raise BadInput(f"loop.prompt_version: verl's tool agent parses <tool_call> (hermes); use {TOOLCALL_VERSION}")

        return RlPlan("verl", verl_command(recipe, files), verl_env(recipe, files), files)
    from codedance_cli.rl.swift_engine import swift_command, swift_env

    command = swift_command(recipe, files)
    checkpoint = latest_swift_checkpoint(files.checkpoints)
    if checkpoint is not None:
        command += ["--resume_from_checkpoint", str(checkpoint)]
    return RlPlan("swift", command, swift_env(recipe, files), files)


def checkpoint_step(checkpoint: Path) -> int:
    """The global step a ms-swift checkpoint was saved at (0 when unreadable)."""
    try:
        return int(json.loads((checkpoint / "trainer_state.json").read_text()).get("global_step", 0))
    except (OSError, ValueError):
        return 0


def already_done(recipe: RlRecipe, files: RunFiles) -> bool:
    """True when a swift run already reached `train.max_steps` (resuming would train past it)."""
    checkpoint = latest_swift_checkpoint(files.checkpoints) if recipe.engine == "swift" else None
    return checkpoint is not None and recipe.train.max_steps is not None and checkpoint_step(checkpoint) >= recipe.train.max_steps


def _is_fresh(output: Path, source: Path) -> bool:
    return output.exists() and output.stat().st_mtime >= max((p.stat().st_mtime for p in [source, *source.rglob("*")]), default=0)


def prepare(recipe: RlRecipe, files: RunFiles) -> None:
    """Export the data and write the engine's config files into the run folder."""
    from codedance_cli.data.sources import check_dataref
    from codedance_cli.recipes.common import DataRef

    dataset = Path(recipe.dataset)
    check_dataref(DataRef(path=dataset), "dataset")
    if recipe.val_dataset is not None:
        check_dataref(DataRef(path=Path(recipe.val_dataset)), "val_dataset")
    version = recipe.loop.prompt_version
    if recipe.engine == "verl":
        from codedance_cli.data.export_verl import export_verl
        from codedance_cli.rl.verl_engine import write_verl_files

        if not _is_fresh(files.train, dataset):
            export_verl(dataset, files.train, prompt_version=version, limit=recipe.limit)
        if recipe.val_dataset is not None and not _is_fresh(files.val, Path(recipe.val_dataset)):
            export_verl(recipe.val_dataset, files.val, prompt_version=version)
        write_verl_files(recipe, files)
        return
    from codedance_cli.rl.swift_data import export_swift_grpo
    from codedance_cli.rl.swift_engine import write_swift_files
    from codedance_cli.trajectory.store import iter_trajectories

    if not _is_fresh(files.swift_train, dataset):
        export_swift_grpo(iter_trajectories(dataset), files.swift_train, files.swift_images, version, limit=recipe.limit)
    write_swift_files(recipe, files)


def progress_line(line: str) -> bool:
    """Lines worth a console: an engine's per-step metrics (ms-swift prints dicts, verl `step:N - ...`) and errors.

    Everything else (argument dumps, model printouts, warnings) goes to the stage's log file only.
    """
    text = line.lstrip()
    return text.startswith(("{'", '{"', "step:", "Traceback")) or "Error" in text[:40]


def launch(command: list[str], env: dict[str, str], log_path: Path, what: str) -> None:
    """Run an engine command with its whole output in `log_path` and its step lines on the console.

    EngineFailed on a non-zero exit, with the log's last lines.
    """
    print(f"{what}: full output in {log_path}", flush=True)
    tail: deque[str] = deque(maxlen=20)
    with (
        log_path.open("a") as log,
        subprocess.Popen(
            command, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        ) as process,
    ):
        assert process.stdout is not None
        for line in process.stdout:
            log.write(line)
            tail.append(line)
            if progress_line(line):
                sys.stdout.write(line)
                sys.stdout.flush()
        code = process.wait()
    if code != 0:
        sys.stderr.write("".join(tail))
        raise EngineFailed(f"{what} exited with status {code}; full output in {log_path}")


def finalize(run_plan: RlPlan) -> Path | None:
    """Make `output_dir/last` the newest trained model (merging verl's FSDP shards first)."""
    files = run_plan.files
    if run_plan.engine == "swift":
        checkpoint = latest_swift_checkpoint(files.checkpoints)
        return link_last(files, checkpoint) if checkpoint is not None else None
    step = latest_verl_step(files.checkpoints)
    if step is None:
        return None
    merged = files.root / "merged" / f"global_step_{step}"
    if not (merged / "config.json").is_file():
        launch(verl_merge_command(files, step), {}, files.root / "verl_merge.log", "verl model merger")
    return link_last(files, merged)


def run(recipe: RlRecipe, *, dry_run: bool = False) -> RlPlan:
    """`codedance rl RECIPE`: prepare the run folder and launch the engine (or only print the plan)."""
    run_plan = plan(recipe)
    if dry_run:
        print(run_plan.describe())
        return run_plan
    if already_done(recipe, run_plan.files):
        print(f"{run_plan.files.checkpoints}: already trained to max_steps={recipe.train.max_steps}; nothing to do")
        finalize(run_plan)
        if run_plan.engine == "swift":
            report_swift_run(run_plan.files)
        return run_plan
    prepare(recipe, run_plan.files)
    launch(run_plan.command, run_plan.env, run_plan.files.root / f"{run_plan.engine}.log", run_plan.engine)
    last = finalize(run_plan)
    if last is not None:
        print(f"trained model: {last} -> {last.resolve()}")
    if run_plan.engine == "swift":
        report_swift_run(run_plan.files)
    return run_plan


def report_swift_run(files: RunFiles) -> None:
    """Print whether GRPO had anything to learn from, and keep it in rl_summary.json (the demo checks it)."""
    summary = summarize_swift_log(files.checkpoints / "logging.jsonl")
    if summary is None:
        return
    write_summary(summary, files.root / "rl_summary.json")
    for line in summary.lines():
        print(line)
