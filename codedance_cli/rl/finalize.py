"""After training: `output_dir/last` is the newest trained model as a Hugging Face folder (what eval/infer load).

ms-swift already saves Hugging Face folders (`checkpoints/checkpoint-N`); `last` links to the newest.
verl saves FSDP shards (`checkpoints/global_step_N/actor`); they are merged with verl's own
`python -m verl.model_merger merge` into `merged/global_step_N`, and `last` links there.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from codedance_cli.rl.run_files import RunFiles


def latest_swift_checkpoint(folder: Path) -> Path | None:
    """The highest-numbered `checkpoint-N` folder ms-swift wrote, if any."""
    if not folder.is_dir():
        return None
    found = [(int(path.name.rsplit("-", 1)[1]), path) for path in folder.glob("checkpoint-*") if path.name.rsplit("-", 1)[1].isdigit()]
    return max(found)[1] if found else None


def latest_verl_step(folder: Path) -> int | None:
    """The step verl recorded in `latest_checkpointed_iteration.txt`, if any."""
    marker = folder / "latest_checkpointed_iteration.txt"
    try:
        return int(marker.read_text().strip())
    except (OSError, ValueError):
        return None


def verl_merge_command(files: RunFiles, step: int) -> list[str]:
    """verl's own merger: FSDP actor shards of `step` -> a Hugging Face folder under `merged/`."""
    return [
        sys.executable, "-m", "verl.model_merger", "merge", "--backend", "fsdp",
        "--local_dir", str(files.checkpoints / f"global_step_{step}" / "actor"),
        "--target_dir", str(files.root / "merged" / f"global_step_{step}"),
    ]  # fmt: skip


def link_last(files: RunFiles, target: Path) -> Path:
    """Point `output_dir/last` at `target` (relative link, replaced atomically)."""
    link = files.root / "last"
    temp = files.root / ".last.tmp"
    if temp.is_symlink() or temp.exists():
        temp.unlink()
    temp.symlink_to(os.path.relpath(target, files.root))
    os.replace(temp, link)
    return link
