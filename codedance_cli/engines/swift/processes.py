"""What the ms-swift plug-ins need to know about the other training processes of a multi-process run."""

from __future__ import annotations

from typing import Any, TypeVar

Item = TypeVar("Item")


def _group() -> Any | None:
    """torch.distributed when a process group of more than one process is up, else None."""
    try:
        import torch.distributed as dist
    except ImportError:
        return None
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return None
    return dist


def gather_across_processes(local: list[Item]) -> tuple[list[Item], int]:
    """Every process's items in rank order, and where this process's own start in that list.

    A collective: every process must call it at the same point (ms-swift calls the reward function on each rank once
    per generation batch, in step). One process: the items as they are, at 0.
    """
    dist = _group()
    if dist is None:
        return list(local), 0
    parts: list[list[Item] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, list(local))
    rank = dist.get_rank()
    start = sum(len(part or []) for part in parts[:rank])
    return [item for part in parts for item in (part or [])], start
