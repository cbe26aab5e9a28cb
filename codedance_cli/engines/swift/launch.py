"""Run an ms-swift command (`swift sft`, `swift rlhf`) to the end: its whole output in a log file, our progress bar.

Progress comes from the records ms-swift appends to OUTPUT_DIR/logging.jsonl (one JSON object per logging step,
with `global_step/max_steps`; a closing object with `last_model_checkpoint`), not from its printed output, which
interleaves tqdm redraws, argument dumps and model printouts. The console gets one bar on a terminal, or one plain
line per logged step when piped, so a long run is never silent in a CI log and never floods it.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from codedance_cli.common.jsonl import parse_records
from codedance_cli.errors import EngineFailed
from codedance_cli.engines.step_bar import step_progress

POLL_S = 0.5
StepText = Callable[[dict[str, Any]], str]


@dataclass
class SwiftLog:
    """What the run reported in logging.jsonl during this launch."""

    records: list[dict[str, Any]] = field(default_factory=list)
    last_checkpoint: str | None = None

    @property
    def steps(self) -> list[dict[str, Any]]:
        """The per-step records (those that carry `global_step/max_steps` and a loss)."""
        return [r for r in self.records if "global_step/max_steps" in r and "loss" in r]

    @property
    def losses(self) -> list[float]:
        return [float(r["loss"]) for r in self.steps]


class JsonlFollower:
    """Reads the records appended to a JSONL file since it was created (tolerates a half-written last line)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0  # earlier runs' records are not this launch's
        self.pending = ""

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.path.open("r", encoding="utf-8", errors="replace") as handle:
            handle.seek(self.offset)
            chunk = handle.read()
            self.offset = handle.tell()
        lines = (self.pending + chunk).split("\n")
        self.pending = lines.pop()  # '' after a complete line, else the unfinished tail
        return parse_records(lines)


def step_of(record: dict[str, Any]) -> tuple[int, int] | None:
    done, _, total = str(record.get("global_step/max_steps", "")).partition("/")
    return (int(done), int(total)) if done.isdigit() and total.isdigit() else None


def loss_text(record: dict[str, Any]) -> str:
    """The default step summary: the loss."""
    return f"loss {float(record['loss']):.4g}" if "loss" in record else ""


def run_swift(
    command: list[str],
    env: dict[str, str],
    *,
    log_path: Path,
    logging_jsonl: Path,
    label: str,
    console: Console | None = None,
    step_text: StepText = loss_text,
) -> SwiftLog:
    """Run `command` to the end; EngineFailed (with the log's likeliest error line) on a non-zero exit."""
    console = console or Console(stderr=True)
    log = SwiftLog()
    follower = JsonlFollower(logging_jsonl)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    console.print(f"{label}: full output in {log_path}", highlight=False, soft_wrap=True)
    started = time.monotonic()
    with log_path.open("w", encoding="utf-8") as sink:
        try:
            process = subprocess.Popen(command, env={**os.environ, **env, "PYTHONUNBUFFERED": "1"}, stdout=sink,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        except OSError as exc:
            raise EngineFailed(f"could not start {command[0]}: {exc}") from None
        with step_progress(label, console) as bar:
            try:
                while True:
                    finished = process.poll() is not None
                    for record in follower.read():
                        log.records.append(record)
                        if record.get("last_model_checkpoint"):
                            log.last_checkpoint = str(record["last_model_checkpoint"])
                        step = step_of(record)
                        if step is not None and "loss" in record:
                            bar.advance_to(step[0], step[1], step_text(record), time.monotonic() - started)
                    if finished:
                        break
                    time.sleep(POLL_S)
            except KeyboardInterrupt:
                process.terminate()
                process.wait(timeout=30)
                raise
    if process.returncode != 0:
        raise EngineFailed(f"{label} exited with {process.returncode}: {error_hint(log_path)} (full log: {log_path})")
    return log


_RAISED = re.compile(r"^(?:\[rank\d+\]:\s*)?(?:[\w.]+\.)?(\w+(?:Error|Exception))(?::|$)")
_WRAPPERS = ("ChildFailedError",)  # torchrun's report that a process failed; the process's own exception says why


def error_hint(log_path: Path, lines: int = 200) -> str:
    """The exception the run raised (the last `SomeError: ...` line of the log's tail, a process's own rather than
    torchrun's wrapper), else the last line naming an error, else the last line; cut to 300 characters."""
    tail: deque[str] = deque(maxlen=lines)
    with log_path.open("r", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.strip():
                tail.append(line.strip())
    raised = [line for line in tail if (match := _RAISED.match(line)) and match.group(1) not in _WRAPPERS]
    named = [line for line in tail if "Error" in line or "error" in line]
    hint = (raised or named or list(tail) or [""])[-1]
    return hint[:300]
