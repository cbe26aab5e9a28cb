"""Read a recipe's `DataRef` as a stream of trajectories, whatever public format it is in.

Stages call this instead of caring about formats. Bad rows of a public format are
counted and logged with their index (one warning line per row on stderr); use
`codedance data import` first to get them all into a file.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator

from codedance_cli.recipes.common import DataRef
from codedance_cli.trajectory.schema import Trajectory
from codedance_cli.errors import BadInput
from codedance_cli.trajectory.store import check_dataset, iter_trajectories

_FORMAT_NAMES = {"codedance-sft": "codedance-sft", "codedance-rl": "codedance-rl", "vqa-jsonl": "vqa", "auto": "auto"}


def check_dataref(ref: DataRef, field: str) -> None:
    """Fail fast, naming `field` and the file, before a stage loads a model or creates its output."""
    if not ref.path.exists():
        raise BadInput(f"{field}: {ref.path} does not exist (make it with `codedance synth` / `codedance filter` / `codedance data import`)")
    if ref.format == "trajectory":
        check_dataset(ref.path)


def iter_dataref(ref: DataRef) -> Iterator[Trajectory]:
    """Trajectories of `ref` (at most `ref.limit`)."""
    if ref.format == "trajectory":
        stream: Iterator[Trajectory] = iter_trajectories(ref.path)
    else:
        stream = _converted(ref)
    return itertools.islice(stream, ref.limit) if ref.limit is not None else stream


def _converted(ref: DataRef) -> Iterator[Trajectory]:
    from codedance_cli.data.importer import iter_converted

    for raw, traj, reason, _ in iter_converted(ref.path, _FORMAT_NAMES[ref.format]):
        if traj is None:
            print(f"warning: {ref.path}: row {raw.index} skipped: {reason}", file=sys.stderr)
            continue
        yield traj
