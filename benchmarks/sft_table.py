"""The benchmark's table: one line per row, ratios against the baseline row of the same run."""

from __future__ import annotations

from typing import Any

COLUMNS = ("row", "samples/s", "tokens/s", "TFLOP/s", "MFU", "data wait", "padding", "peak GiB", "tokens/s vs baseline",
           "loss Δ vs baseline", "steps", "wall s", "knob")


def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}" if value == 0 or value >= 0.1 else f"{value:.2g}"


def _pct(value: Any) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.1f}%" if value == 0 or value >= 0.001 else f"{100 * value:.1e}%"  # CPU smoke MFU is tiny


def loss_gap(losses: list[float] | None, baseline: list[float] | None) -> str:
    """Largest |loss - baseline loss| over the steps both logged: same model, data and order, so a knob that keeps the
    loss's meaning stays near 0 (bf16 noise); rows that batch samples differently average them differently."""
    if not losses or not baseline:
        return "-"
    return f"{max(abs(a - b) for a, b in zip(losses, baseline)):.3g}"


def line(result: dict[str, Any], baseline: float | None, baseline_losses: list[float] | None = None) -> list[str]:
    if "skipped" in result:
        return [result["row"], *["-"] * (len(COLUMNS) - 3), "-", f"skipped: {result['skipped']}"]
    tokens = result.get("tokens_per_s")
    ratio = f"{tokens / baseline:.2f}x" if tokens and baseline else "-"
    reserved, allocated = result.get("peak_reserved_gib"), result.get("peak_allocated_gib")
    memory = f"{_num(reserved)} / {_num(allocated)}" if reserved is not None else _num(allocated)
    knob = result.get("knob", "")
    if result.get("exit"):
        knob += f" (exit {result['exit']}: {result.get('error_hint', '')[:120]})"
    return [result["row"], _num(result.get("samples_per_s"), 2), _num(tokens, 0), _num(result.get("tflops_per_s")),
            _pct(result.get("mfu")), _pct(result.get("data_wait_share")), _pct(result.get("padding_share")), memory,
            ratio, loss_gap(result.get("losses"), baseline_losses), str(result.get("steps_measured", "-")),
            _num(result.get("wall_s"), 0), knob]


def table(results: list[dict[str, Any]]) -> str:
    """Markdown table; peak GiB is ms-swift's reserved / torch's allocated (the bare loop: allocated)."""
    base = next((r for r in results if r.get("row") == "baseline"), {})
    rows = [list(COLUMNS), ["---"] + ["---:"] * (len(COLUMNS) - 2) + ["---"]]
    rows += [line(result, base.get("tokens_per_s"), base.get("losses")) for result in results]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in rows)
