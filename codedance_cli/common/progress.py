"""The one progress bar of every long pass: title, bar, done/total, elapsed, remaining.

On a terminal it redraws in place; on anything else (a pipe, a log file, CI) rich
draws nothing while running and prints the final state once when the bar stops
(nothing at all when `transient`), so logs get one line per pass, not a redraw per tick.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def progress_bar(
    title: str, console: Console | None = None, *, status: bool = False, transient: bool = False, disable: bool = False
) -> Progress:
    """A Progress showing `title` (bold) then each task's description, bar, M/N, elapsed and remaining time.

    `status=True` adds a `{task.fields[status]}` column: add tasks with `status=""` and update it.
    `transient` erases the bar when it stops; `disable` draws nothing (the counts are still kept).
    An unknown total (`total=None`) shows a pulsing bar and `M/?`.
    """
    columns: list[ProgressColumn] = [TextColumn(f"[bold]{escape(title)}[/] {{task.description}}"), BarColumn(), MofNCompleteColumn()]
    if status:
        columns.append(TextColumn("{task.fields[status]}"))
    columns += [TimeElapsedColumn(), TimeRemainingColumn()]
    return Progress(*columns, console=console, transient=transient, disable=disable)
