"""Run an engine command whose console output we filter by line (verl, verl's merger): whole output in a log file.

ms-swift runs go through engines/swift/launch.py instead, which follows its logging.jsonl.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import deque
from collections.abc import Callable
from pathlib import Path

from codedance_cli.errors import EngineFailed


def progress_line(line: str) -> bool:
    """Lines worth a console: per-step metrics (verl prints `step:N - ...`, ms-swift dicts) and errors.

    Everything else (argument dumps, model printouts, warnings) goes to the log file only.
    """
    text = line.lstrip()
    return text.startswith(("{'", '{"', "step:", "Traceback")) or "Error" in text[:40]


def run_logged(command: list[str], env: dict[str, str], log_path: Path, what: str, show: Callable[[str], str | None] | None = None) -> None:
    """Run `command` with its whole output in `log_path` and its step lines on stdout; EngineFailed on non-zero exit.

    `show` turns a line into what the console gets (None: nothing); by default the step and error lines as they are.
    """
    print(f"{what}: full output in {log_path}", flush=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tail: deque[str] = deque(maxlen=20)
    try:
        process = subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, text=True, errors="replace", bufsize=1)
    except OSError as exc:
        raise EngineFailed(f"could not start {command[0]}: {exc}") from None
    with log_path.open("a") as log, process:
        assert process.stdout is not None
        for line in process.stdout:
            log.write(line)
            tail.append(line)
            shown = show(line) if show is not None else (line if progress_line(line) else None)
            if shown is not None:
                sys.stdout.write(shown if shown.endswith("\n") else shown + "\n")
                sys.stdout.flush()
        code = process.wait()
    if code != 0:
        sys.stderr.write("".join(tail))
        raise EngineFailed(f"{what} exited with status {code}; full output in {log_path}")
