"""verl saves FSDP shards (`checkpoints/global_step_N/actor`); its own merger turns them into a Hugging Face folder."""

from __future__ import annotations

import sys
from pathlib import Path

from codedance_cli.engines.rl_files import RunFiles


def latest_verl_step(folder: Path) -> int | None:
    """The step verl recorded in `latest_checkpointed_iteration.txt`, if any."""
    marker = folder / "latest_checkpointed_iteration.txt"
    try:
        return int(marker.read_text().strip())
    except (OSError, ValueError):
        return None


def merged_folder(files: RunFiles, step: int) -> Path:
    return files.root / "merged" / f"global_step_{step}"


def verl_merge_command(files: RunFiles, step: int) -> list[str]:
    """verl's own merger: FSDP actor shards of `step` -> a Hugging Face folder under `merged/`."""
    return [
        sys.executable, "-m", "verl.model_merger", "merge", "--backend", "fsdp",
        "--local_dir", str(files.checkpoints / f"global_step_{step}" / "actor"),
        "--target_dir", str(merged_folder(files, step)),
    ]  # fmt: skip
