"""Follow a running `swift sft`: keep its whole log, show our own progress bar from its step/loss records.

ms-swift prints one Python-dict record per logging step, e.g.
`{'loss': '6.706', 'grad_norm': '6.057', ..., 'global_step/max_steps': '1/4', ...}` (tqdm redraws
around it with carriage returns), and the same record as JSON in OUTPUT_DIR/logging.jsonl.
"""

from __future__ import annotations

import ast
import re
import subprocess
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from codedance_cli.console import make_console

RECORD = re.compile(r"\{'[^{}]*'global_step/max_steps': '(\d+)/(\d+)'[^{}]*\}")
LAST_CHECKPOINT = re.compile(r"last_model_checkpoint: (\S+)")


@dataclass
class TrainLog:
    """What the run reported: per-step records, the final checkpoint, the log's tail for errors."""

    records: list[dict[str, object]] = field(default_factory=list)
    last_checkpoint: str | None = None
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=30))

    @property
    def losses(self) -> list[float]:
        return [float(r["loss"]) for r in self.records if "loss" in r]  # type: ignore[arg-type]


def parse_line(line: str, log: TrainLog) -> tuple[int, int] | None:
    """Update `log` from one output line; returns (step, max_steps) when the line carried a step record."""
    if found := LAST_CHECKPOINT.search(line):
        log.last_checkpoint = found.group(1)
    match = RECORD.search(line)
    if match is None:
        return None
    try:
        record = ast.literal_eval(match.group(0))
    except (ValueError, SyntaxError):
        return None
    log.records.append(record)
    return int(match.group(1)), int(match.group(2))


def follow(process: subprocess.Popen[str], log_path: Path, console: Console | None = None) -> TrainLog:
    """Copy the process output to `log_path` while driving a rich progress bar; returns the parsed log.

    A bar redraws in place only on a terminal; piped into a log, each logged step is printed as a plain line
    instead, so a long SFT is never silent there.
    """
    log = TrainLog()
    console = console or make_console(stderr=True)
    started, printed_step = time.monotonic(), -1
    stream: IO[str] = process.stdout  # type: ignore[assignment]
    columns = (TextColumn("swift sft"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[loss]}"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with log_path.open("w", encoding="utf-8") as sink, Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("train", total=None, loss="starting (loading model and data)")
        for raw in stream:  # text mode: \r (tqdm redraws) also ends a line
            sink.write(raw if raw.endswith("\n") else raw + "\n")
            line = raw.rstrip()
            if line:
                log.tail.append(line)
            step = parse_line(line, log)
            if step is not None:
                loss = log.records[-1].get("loss")
                bar.update(task, completed=step[0], total=step[1], loss=f"loss {loss}" if loss is not None else "")
                if not console.is_terminal and step[0] != printed_step:  # the closing summary repeats the last step
                    printed_step = step[0]
                    loss_text = f", loss {loss}" if loss is not None else ""
                    console.print(f"swift sft: step {step[0]}/{step[1]}{loss_text} ({time.monotonic() - started:.0f} s)", soft_wrap=True)
    return log
