"""The task families by name, and seeded, reproducible generation of items and tasks.

Item `index` under `seed` always gives the same item: its generator is seeded with
(seed, index, family id), so adding a family or asking for a subset of families
never changes the items of the others. Use different seeds for training data and
held-out evaluation sets.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterator, Sequence

import numpy as np

from codedance_cli.errors import BadInput
from codedance_cli.procedural.base import ProceduralItem, TaskFamily
from codedance_cli.procedural.charts import ChartFamily
from codedance_cli.procedural.counting import CountingFamily
from codedance_cli.procedural.geometry import GeometryFamily
from codedance_cli.procedural.visual_search import VisualSearchFamily
from codedance_cli.trajectory.schema import Trajectory

FAMILIES: dict[str, TaskFamily] = {f.name: f for f in (CountingFamily(), VisualSearchFamily(), ChartFamily(), GeometryFamily())}
GENERATOR_VERSION = 1  # bump when a family's drawing or solution changes, so old and new items are told apart


def family_names(families: Sequence[str] | None = None) -> list[str]:
    """Validated family names (all when None), in registry order."""
    if not families:
        return list(FAMILIES)
    unknown = [name for name in families if name not in FAMILIES]
    if unknown:
        raise BadInput(f"unknown procedural family {unknown[0]!r}; known: {', '.join(FAMILIES)}")
    return [name for name in FAMILIES if name in families]


def generate_item(seed: int, index: int, families: Sequence[str] | None = None) -> ProceduralItem:
    """Item `index` of the stream for `seed`; families take turns (index modulo the family count)."""
    names = family_names(families)
    name = names[index % len(names)]
    rng = np.random.default_rng([seed, index, zlib.crc32(name.encode())])
    return FAMILIES[name].generate(rng)


def task_id_for(seed: int, index: int, family: str) -> str:
    return f"proc-{family}-s{seed}-{index:06d}"


def encode_png(image) -> bytes:
    """PNG with fast compression: generation throughput matters more than a few percent of size."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


def item_to_task(item: ProceduralItem, seed: int, index: int) -> Trajectory:
    """The item as a task: a Trajectory with no turns, metadata saying how to regenerate it."""
    return Trajectory(
        task_id=task_id_for(seed, index, item.family),
        question=item.question,
        images=[encode_png(image) for image in item.images],
        ground_truth=item.ground_truth,
        answer_type=item.answer_type,
        choices=item.choices,
        metadata={
            "source": "procedural",
            "family": item.family,
            "variant": item.variant,
            "seed": seed,
            "index": index,
            "generator_version": GENERATOR_VERSION,
            "difficulty_params": item.params,
        },
    )


def iter_items(n: int, seed: int = 0, families: Sequence[str] | None = None, start: int = 0) -> Iterator[tuple[int, ProceduralItem]]:
    """(index, item) for indices start..n-1, generated lazily."""
    names = family_names(families)
    for index in range(start, n):
        yield index, generate_item(seed, index, names)


def iter_tasks(n: int, seed: int = 0, families: Sequence[str] | None = None) -> Iterator[Trajectory]:
    """Tasks without turns, streamed (for large held-out sets)."""
    for index, item in iter_items(n, seed, families):
        yield item_to_task(item, seed, index)


def make_tasks(n: int, seed: int = 0, families: Sequence[str] | None = None) -> list[Trajectory]:
    """`n` tasks without turns (held-out eval sets); same arguments, same tasks."""
    return list(iter_tasks(n, seed, families))
