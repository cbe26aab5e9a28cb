"""`codedance rl` with `engine: verl`: the plan, data export, launch and merged checkpoint of a verl GRPO run.

verl resumes from its own checkpoints (`trainer.resume_mode=auto`); its FSDP shards are merged with verl's
merger into a Hugging Face folder, and `last` links there.
"""

from __future__ import annotations

from pathlib import Path

from codedance_cli.engines.checkpoints import link_last
from codedance_cli.engines.fresh import is_fresh
from codedance_cli.engines.launch import progress_line, run_logged
from codedance_cli.engines.rl_summary import write_summary
from codedance_cli.engines.rl_files import RunFiles
from codedance_cli.engines.verl.command import verl_command, verl_env, write_verl_files
from codedance_cli.engines.verl.merge import latest_verl_step, merged_folder, verl_merge_command
from codedance_cli.engines.verl.metrics import parse_step_line, step_text, summarize_verl_metrics
from codedance_cli.errors import BadInput
from codedance_cli.recipes.rl import RlRecipe


class VerlGrpo:
    name = "verl"

    def check(self, recipe: RlRecipe) -> None:
        from codedance_cli.loop.prompts import TOOLCALL_VERSION, is_toolcall

        if not is_toolcall(recipe.loop.prompt_version):
            raise BadInput(f"loop.prompt_version: verl's tool agent parses <tool_call> (hermes); use {TOOLCALL_VERSION}")
        train, verl = recipe.train, recipe.verl
        if train.mini_batch_size > train.train_batch_size:
            raise BadInput(f"train.mini_batch_size: {train.mini_batch_size} is above train.train_batch_size {train.train_batch_size} (verl refuses it)")
        if (train.train_batch_size * train.rollout_n) % verl.agent_workers:
            raise BadInput(
                f"verl.agent_workers: {verl.agent_workers} does not divide train.train_batch_size x train.rollout_n = "
                f"{train.train_batch_size * train.rollout_n} (verl splits a batch evenly among its agent loop workers)"
            )

    def command(self, recipe: RlRecipe, files: RunFiles, *, dry_run: bool) -> tuple[list[str], dict[str, str]]:
        return verl_command(recipe, files), verl_env(recipe, files)

    def already_done(self, recipe: RlRecipe, files: RunFiles) -> bool:
        return False  # verl itself resumes and stops at total_training_steps

    def prepare(self, recipe: RlRecipe, files: RunFiles) -> None:
        from codedance_cli.data.export_verl import export_verl

        version = recipe.loop.prompt_version
        if not is_fresh(files.train, Path(recipe.dataset)):
            export_verl(recipe.dataset, files.train, prompt_version=version, limit=recipe.limit, require_images=True)
        if recipe.val_dataset is not None and not is_fresh(files.val, Path(recipe.val_dataset)):
            export_verl(recipe.val_dataset, files.val, prompt_version=version, require_images=True)
        write_verl_files(recipe, files)

    def train(self, command: list[str], env: dict[str, str], files: RunFiles) -> None:
        total = next((int(arg.split("=", 1)[1]) for arg in command if arg.startswith("trainer.total_training_steps=")), None)

        def show(line: str) -> str | None:  # one short line a step instead of verl's few hundred metrics
            metrics = parse_step_line(line)
            if metrics is not None:
                return step_text(metrics, total)
            return line if progress_line(line) else None

        run_logged(command, env, files.root / "verl.log", "verl", show)

    def finalize(self, files: RunFiles) -> Path | None:
        step = latest_verl_step(files.checkpoints)
        if step is None:
            return None
        merged = merged_folder(files, step)
        if not (merged / "config.json").is_file():
            run_logged(verl_merge_command(files, step), {}, files.root / "verl_merge.log", "verl model merger")
        return link_last(files.root, merged)

    def report(self, files: RunFiles) -> list[str]:
        """Whether GRPO had anything to learn from (verl's metrics file), kept in rl_summary.json."""
        summary = summarize_verl_metrics(files.verl_metrics)
        if summary is None:
            return []
        write_summary(summary, files.root / "rl_summary.json")
        return summary.lines()
