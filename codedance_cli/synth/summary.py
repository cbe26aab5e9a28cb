"""What a synth run did: counts, reasons for drops, and how to show them (rich table or JSON)."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from codedance_cli.common.tables import count_table


@dataclass
class SynthSummary:
    generator: str
    output: Path
    requested: int = 0
    already_done: int = 0
    kept: int = 0
    dropped: collections.Counter = field(default_factory=collections.Counter)  # reason -> count
    by_family: collections.Counter = field(default_factory=collections.Counter)  # family/template -> kept
    judge_rescued: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "generator": self.generator,
            "output": str(self.output),
            "requested": self.requested,
            "already_done": self.already_done,
            "kept": self.kept,
            "dropped": dict(self.dropped),
            "kept_by_family": dict(self.by_family),
            "judge_rescued": self.judge_rescued,
            "seconds": round(self.seconds, 2),
            "kept_per_s": round(self.kept / self.seconds, 2) if self.seconds else None,
        }

    def print(self, console: Console) -> None:
        rows: list[tuple[str, object]] = [
            ("requested", self.requested), ("already in output (resumed)", self.already_done), ("[green]kept[/]", self.kept)]
        rows += [(f"  kept: {family}", count) for family, count in sorted(self.by_family.items())]
        rows += [(f"[yellow]dropped: {reason}[/]", count) for reason, count in sorted(self.dropped.items())]
        if self.judge_rescued:
            rows.append(("kept by judge fallback", self.judge_rescued))
        rows.append(("seconds", f"{self.seconds:.1f}"))
        table = count_table(f"codedance synth ({self.generator}) -> {self.output}", rows)
        console.print(table)
