"""The 'what / count' summary table every pass prints at its end (synth, filter, data import)."""

from __future__ import annotations

from collections.abc import Iterable

from rich.table import Table


def count_table(title: str, rows: Iterable[tuple[str, object]]) -> Table:
    """A two-column table: a label (rich markup allowed) and its count, right-aligned."""
    table = Table(title=title)
    table.add_column("what")
    table.add_column("count", justify="right")
    for label, count in rows:
        table.add_row(label, str(count))
    return table
