"""Verifiable-by-construction task generator: counting, visual search, charts, geometry.

`make_tasks(n, seed, families)` gives tasks without turns (held-out sets);
`codedance_cli.procedural.solve.solve_item` executes an item's solution in the
sandbox and returns a verified trajectory (used by `codedance synth`).
"""

from codedance_cli.procedural.base import ProceduralItem, SolutionStep, TaskFamily
from codedance_cli.procedural.registry import FAMILIES, generate_item, item_to_task, iter_items, iter_tasks, make_tasks

__all__ = [
    "FAMILIES",
    "ProceduralItem",
    "SolutionStep",
    "TaskFamily",
    "generate_item",
    "item_to_task",
    "iter_items",
    "iter_tasks",
    "make_tasks",
]
