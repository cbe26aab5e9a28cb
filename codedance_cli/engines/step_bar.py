"""A training-step bar for engine runs: a rich bar on a terminal, one plain line per step when piped."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import Progress, TaskID

from codedance_cli.common.progress import progress_bar


class StepBar:
    """Moves to a step with a short summary; prints each new step as a line where a bar cannot redraw."""

    def __init__(self, label: str, console: Console, progress: Progress, task: TaskID) -> None:
        self.label, self.console, self.progress, self.task = label, console, progress, task
        self.printed_step = -1

    def advance_to(self, step: int, total: int, text: str, elapsed_s: float) -> None:
        self.progress.update(self.task, completed=step, total=total, status=text)
        if not self.console.is_terminal and step != self.printed_step:
            self.printed_step = step
            summary = f", {text}" if text else ""
            self.console.print(f"{self.label}: step {step}/{total}{summary} ({elapsed_s:.0f} s)", highlight=False, soft_wrap=True)


@contextmanager
def step_progress(label: str, console: Console) -> Iterator[StepBar]:
    with progress_bar(label, console, status=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("", total=None, status="starting (loading model and data)")
        yield StepBar(label, console, progress, task)
