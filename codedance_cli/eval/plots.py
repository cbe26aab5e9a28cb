"""The three plots of an eval report (PNG, matplotlib's object API with the Agg canvas, no pyplot state)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from codedance_cli.common.atomic import atomic_write_bytes


def _save(figure: Figure, path: Path) -> Path:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue(), fsync=True)
    return path


def _bars(names: list[str], values: list[float], title: str, ylabel: str, path: Path, *, percent: bool = True) -> Path:
    figure = Figure(figsize=(max(4.0, 1.1 * len(names) + 2), 3.4))
    axes = figure.add_subplot()
    bars = axes.bar(names, [v * 100 if percent else v for v in values], color="#4C72B0")
    for bar, value in zip(bars, values, strict=True):
        label = f"{value * 100:.1f}%" if percent else f"{value:.2f}"
        axes.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=8)
    axes.set_title(title)
    axes.set_ylabel(ylabel)
    if percent:
        axes.set_ylim(0, 105)
    axes.tick_params(axis="x", labelrotation=20)
    return _save(figure, path)


def accuracy_plot(summaries: list[dict[str, Any]], path: Path) -> Path:
    return _bars([s["name"] for s in summaries], [s["accuracy"] for s in summaries], "Accuracy per benchmark", "accuracy (%)", path)


def failure_rate_plot(summaries: list[dict[str, Any]], path: Path) -> Path:
    return _bars(
        [s["name"] for s in summaries],
        [s["exec_failure_rate"] for s in summaries],
        "Code execution failure rate",
        "failed / executed cells (%)",
        path,
    )


def tool_calls_plot(summaries: list[dict[str, Any]], path: Path) -> Path:
    """Grouped histogram: share of samples with k tool calls, one colour per benchmark."""
    figure = Figure(figsize=(6.4, 3.4))
    axes = figure.add_subplot()
    counts = sorted({int(k) for s in summaries for k in s["tool_calls_histogram"]}) or [0]
    width = 0.8 / max(1, len(summaries))
    for index, summary in enumerate(summaries):
        total = max(1, summary["samples"])
        shares = [100 * summary["tool_calls_histogram"].get(k, summary["tool_calls_histogram"].get(str(k), 0)) / total for k in counts]
        axes.bar(
            [k + index * width - 0.4 + width / 2 for k in counts],
            shares,
            width=width,
            label=f"{summary['name']} (mean {summary['tool_calls_per_sample']:.2f})",
        )
    axes.set_xticks(counts)
    axes.set_xlabel("tool calls in the sample")
    axes.set_ylabel("samples (%)")
    axes.set_title("Tool calls per sample")
    axes.set_ylim(0, 105)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: bars reach 100 %
    return _save(figure, path)


def write_plots(summaries: list[dict[str, Any]], folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "accuracy": accuracy_plot(summaries, folder / "accuracy.png"),
        "tool_calls": tool_calls_plot(summaries, folder / "tool_calls.png"),
        "exec_failure_rate": failure_rate_plot(summaries, folder / "exec_failure_rate.png"),
    }
