"""`codedance rl` with `engine: swift`: the plan, data export, launch, checkpoint and summary of a ms-swift GRPO run.

ms-swift resumes when handed the run's newest `checkpoint-N` (`--resume_from_checkpoint`); `last` links to the
newest checkpoint, which is already a Hugging Face folder.
"""

from __future__ import annotations

from pathlib import Path

from codedance_cli.engines.checkpoints import checkpoint_step, latest_checkpoint, link_last
from codedance_cli.engines.fresh import is_fresh
from codedance_cli.engines.rl_files import RunFiles
from codedance_cli.engines.swift.grpo_command import swift_args, swift_env, write_swift_files
from codedance_cli.engines.rl_summary import write_summary
from codedance_cli.engines.swift.grpo_summary import summarize_swift_log
from codedance_cli.engines.swift.launch import run_swift
from codedance_cli.engines.swift.args import swift_executable
from codedance_cli.errors import BadInput
from codedance_cli.recipes.rl import RlRecipe


def grpo_step_text(record: dict) -> str:
    """A GRPO step in a few words: reward mean ± std and the share of groups that taught nothing."""
    parts = []
    if "reward" in record:
        parts.append(f"reward {float(record['reward']):.3f} ± {float(record.get('reward_std', 0.0)):.3f}")
    if "frac_reward_zero_std" in record:
        parts.append(f"equal groups {100 * float(record['frac_reward_zero_std']):.0f} %")
    return ", ".join(parts)


class SwiftGrpo:
    name = "swift"

    def check(self, recipe: RlRecipe) -> None:
        """Refuse a rollout pixel budget other than the one the starting checkpoint was trained at.

        The policy is updated on what it sees: at another budget it sees images it never saw in SFT (a GPU run did,
        at a quarter of SFT's visual tokens, and every rollout failed the format; docs/results.md, fourth run).
        """
        from codedance_cli.models.pixel_budget import trained_budget_mismatch

        if (mismatch := trained_budget_mismatch(recipe.model.path or "", recipe.model.max_pixels)) is not None:
            raise BadInput(f"{mismatch}; RL would train the policy on images it was not trained to read. "
                           "Set model.max_pixels to that budget, or to null to take it from the checkpoint")

    def command(self, recipe: RlRecipe, files: RunFiles, *, dry_run: bool) -> tuple[list[str], dict[str, str]]:
        launcher = recipe.swift.command if dry_run else swift_executable(recipe.swift.command)
        command = [launcher, *swift_args(recipe, files)]
        checkpoint = latest_checkpoint(files.checkpoints)
        if checkpoint is not None:
            command += ["--resume_from_checkpoint", str(checkpoint)]
        return command, swift_env(recipe, files)

    def already_done(self, recipe: RlRecipe, files: RunFiles) -> bool:
        checkpoint = latest_checkpoint(files.checkpoints)
        max_steps = recipe.train.max_steps
        return checkpoint is not None and max_steps is not None and checkpoint_step(checkpoint) >= max_steps

    def prepare(self, recipe: RlRecipe, files: RunFiles) -> None:
        from codedance_cli.engines.swift.grpo_data import export_swift_grpo
        from codedance_cli.trajectory.store import iter_trajectories

        dataset = Path(recipe.dataset)
        if not is_fresh(files.swift_train, dataset):
            export_swift_grpo(iter_trajectories(dataset), files.swift_train, files.swift_images,
                              recipe.loop.prompt_version, limit=recipe.limit)
        write_swift_files(recipe, files)

    def train(self, command: list[str], env: dict[str, str], files: RunFiles) -> None:
        run_swift(command, env, log_path=files.root / "swift.log", logging_jsonl=files.checkpoints / "logging.jsonl",
                  label="swift rlhf", step_text=grpo_step_text)

    def finalize(self, files: RunFiles) -> Path | None:
        checkpoint = latest_checkpoint(files.checkpoints)
        return link_last(files.root, checkpoint) if checkpoint is not None else None

    def report(self, files: RunFiles) -> list[str]:
        """Whether GRPO had anything to learn from, kept in rl_summary.json (the demo checks it)."""
        summary = summarize_swift_log(files.checkpoints / "logging.jsonl", files.reward_log)
        if summary is None:
            return []
        write_summary(summary, files.root / "rl_summary.json")
        return summary.lines()
