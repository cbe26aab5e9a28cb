"""What `codedance rl` asks of a training engine; each wing (engines/swift, engines/verl) provides one."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from codedance_cli.engines.rl_files import RunFiles
from codedance_cli.recipes.rl import RlRecipe


class RlEngine(Protocol):
    name: str

    def check(self, recipe: RlRecipe) -> None:
        """BadInput for a recipe this engine cannot run (before anything is written)."""

    def command(self, recipe: RlRecipe, files: RunFiles, *, dry_run: bool) -> tuple[list[str], dict[str, str]]:
        """The launch command and the environment it adds (pure: writes nothing)."""

    def already_done(self, recipe: RlRecipe, files: RunFiles) -> bool:
        """True when a previous launch already trained to the recipe's end (resuming would train past it)."""

    def prepare(self, recipe: RlRecipe, files: RunFiles) -> None:
        """Export the data and write the engine's config files into the run folder."""

    def train(self, command: list[str], env: dict[str, str], files: RunFiles) -> None:
        """Run the launch to the end; EngineFailed on failure."""

    def finalize(self, files: RunFiles) -> Path | None:
        """The newest trained model as a Hugging Face folder (merged first where the engine saves shards)."""

    def report(self, files: RunFiles) -> list[str]:
        """Lines about what training did (also written into the run folder), or none."""
