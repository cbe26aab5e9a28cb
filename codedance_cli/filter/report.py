"""The filter's report: counts, drop reasons, difficulty and turn distributions; rich table, JSON, PNG histogram."""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from codedance_cli.common.atomic import atomic_write_bytes, atomic_write_text
from codedance_cli.common.tables import count_table


@dataclass
class FilterReport:
    input: str
    output: str
    seen: int = 0
    resumed: int = 0
    kept: int = 0
    dropped: collections.Counter = field(default_factory=collections.Counter)  # reason kind -> count
    difficulty: collections.Counter = field(default_factory=collections.Counter)  # label -> kept count
    turns: collections.Counter = field(default_factory=collections.Counter)  # assistant turns -> kept count
    pass_rates: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def add_kept(self, num_turns: int, difficulty: str | None, rate: float | None) -> None:
        self.kept += 1
        self.turns[num_turns] += 1
        self.difficulty[difficulty or "unrated"] += 1
        if rate is not None:
            self.pass_rates.append(rate)

    def as_dict(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "output": self.output,
            "seen": self.seen,
            "resumed_already_decided": self.resumed,
            "kept": self.kept,
            "dropped": dict(self.dropped),
            "difficulty": dict(self.difficulty),
            "turns_per_trajectory": {str(k): v for k, v in sorted(self.turns.items())},
            "mean_weak_pass_rate": round(sum(self.pass_rates) / len(self.pass_rates), 4) if self.pass_rates else None,
            "seconds": round(self.seconds, 2),
        }

    def print(self, console: Console) -> None:
        rows: list[tuple[str, object]] = [("items seen", self.seen)]
        if self.resumed:
            rows.append(("decided in an earlier run", self.resumed))
        rows.append(("[green]kept[/]", self.kept))
        rows += [(f"[yellow]dropped: {reason}[/]", count) for reason, count in self.dropped.most_common()]
        rows += [(f"kept difficulty: {label}", self.difficulty[label]) for label in ("hard", "medium", "easy", "unrated")
                 if self.difficulty.get(label)]
        rows += [(f"kept with {turns} assistant turn(s)", count) for turns, count in sorted(self.turns.items())]
        rows.append(("seconds", f"{self.seconds:.1f}"))
        table = count_table(f"codedance filter: {self.input} -> {self.output}", rows)
        console.print(table)


def write_report(report: FilterReport, folder: Path) -> tuple[Path, Path]:
    """report.json and histogram.png (difficulty levels, turns per trajectory), both written atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    json_path, png_path = folder / "report.json", folder / "histogram.png"
    atomic_write_text(json_path, json.dumps(report.as_dict(), indent=2))
    atomic_write_bytes(png_path, _histogram_png(report))
    return json_path, png_path


def _histogram_png(report: FilterReport) -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=100)
    labels = [label for label in ("hard", "medium", "easy", "unrated") if report.difficulty.get(label)] or ["none"]
    left.bar(labels, [report.difficulty.get(label, 0) for label in labels], color="#4682b4")
    left.set_title("kept items by difficulty")
    left.set_ylabel("items")
    turns = sorted(report.turns) or [0]
    right.bar([str(t) for t in turns], [report.turns.get(t, 0) for t in turns], color="#c0504d")
    right.set_title("assistant turns per kept trajectory")
    right.set_xlabel("turns")
    from matplotlib.ticker import MaxNLocator

    for axis in (left, right):
        axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()

