"""Finding the newest checkpoint an engine wrote and pointing `OUTPUT_DIR/last` at it (what eval/infer load).

ms-swift saves Hugging Face folders `checkpoint-N` (sft: under output_dir; rl: under output_dir/checkpoints);
verl's FSDP shards are merged into Hugging Face folders first (engines/verl/merge.py). Either way `last` is a
relative symlink replaced atomically, so a reader never sees it missing or half-made.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from codedance_cli.common.atomic import atomic_symlink
from codedance_cli.errors import EngineFailed


def latest_checkpoint(folder: Path) -> Path | None:
    """The highest-numbered `checkpoint-N` folder in `folder`, if any."""
    if not folder.is_dir():
        return None
    found = [(int(path.name.rsplit("-", 1)[1]), path) for path in folder.glob("checkpoint-*")
             if path.is_dir() and path.name.rsplit("-", 1)[1].isdigit()]
    return max(found)[1] if found else None


def checkpoint_step(checkpoint: Path) -> int:
    """The global step a ms-swift checkpoint was saved at (0 when unreadable)."""
    try:
        return int(json.loads((checkpoint / "trainer_state.json").read_text()).get("global_step", 0))
    except (OSError, ValueError):
        return 0


def require_checkpoint(folder: Path, reported: str | None, what: str) -> Path:
    """The checkpoint the engine reported (when it exists), else the newest in `folder`; EngineFailed when none."""
    if reported and Path(reported).is_dir():
        return Path(reported)
    found = latest_checkpoint(folder)
    if found is None:
        raise EngineFailed(f"{what} finished but wrote no checkpoint-* under {folder}")
    return found


def link_last(root: Path, target: Path) -> Path:
    """Point `root/last` at `target` (relative link, replaced atomically) and return the link."""
    return atomic_symlink(root / "last", os.path.relpath(target, root))
