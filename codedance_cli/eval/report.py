"""What people read after an eval: a rich table on the terminal, results.json for machines, report.md for humans."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from codedance_cli.common.atomic import atomic_write_text


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def results_table(results: dict[str, Any]) -> Table:
    """Accuracy per benchmark (bold) and per category (indented), with the tool-use behaviour beside it.

    The official metric gets a column only where it differs from accuracy (HR-Bench's rotation groups), so the
    table fits an 80-column terminal in the common case.
    """
    voted = results["samples_per_item"] > 1
    summaries = list(results["benchmarks"].values())
    official = any(s["headline"] != s["accuracy"] for s in summaries)
    table = Table(title=f"codedance eval — {results['mode']} mode, {results['model_name']}", title_justify="left")
    table.add_column("benchmark / category", overflow="ellipsis", max_width=22, no_wrap=True)
    numbers = ["items", "acc%", "printed%"] + (["official%"] if official else []) + (["mean@n%", "pass@n%"] if voted else [])
    for column in numbers + ["calls", "fail%", "format%"]:  # numbers are never cut; the name column gives way on narrow terminals
        table.add_column(column, justify="right", no_wrap=True, min_width=len(column))
    for summary in summaries:
        row = [summary["name"], str(summary["items"]), _pct(summary["accuracy"]), _pct(summary["printed_reference"])]
        row += [_pct(summary["headline"])] if official else []
        row += [_pct(summary["sample_accuracy"]), _pct(summary["pass_at_n"])] if voted else []
        row += [f"{summary['tool_calls_per_sample']:.2f}", _pct(summary["exec_failure_rate"]), _pct(summary["format"]["adherence"])]
        table.add_row(*row, style="bold")
        if len(summary["categories"]) > 1:
            for name, category in summary["categories"].items():
                cells = [f"  {name}", str(category["items"]), _pct(category["accuracy"]), _pct(category["printed_reference"])]
                table.add_row(*cells, *[""] * (len(row) - len(cells)))
    return table


def print_table(results: dict[str, Any], console: Console) -> None:
    console.print(results_table(results))


def write_results_json(results: dict[str, Any], path: Path) -> Path:
    return atomic_write_text(path, json.dumps(results, indent=2, ensure_ascii=False, default=str) + "\n", fsync=True)


def write_report_md(results: dict[str, Any], path: Path) -> Path:
    """A readable summary: headline numbers, categories, format adherence, behaviour, plots, viewer link."""
    lines = [
        "# codedance eval report",
        "",
        f"- model: `{results['model_name']}`",
        f"- mode: **{results['mode']}** ({'code tool loop' if results['mode'] == 'tool' else 'no tools: the baseline'})",
        f"- samples per item: {results['samples_per_item']}" + (" (answer = majority vote)" if results["samples_per_item"] > 1 else ""),
        f"- loop: max_turns={results['loop']['max_turns']}, temperature={results['loop']['temperature']}, "
        f"top_p={results['loop']['top_p']}, prompt={results['loop']['prompt_version']}",
        f"- judge: {results['judge'] or 'none (rule-based extraction)'}",
        "",
        "## Accuracy",
        "",
        "| benchmark | items | accuracy % | official metric % | mean@n % | pass@n % | unreadable % |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in results["benchmarks"].values():
        lines.append(
            f"| {s['name']} | {s['items']} | {_pct(s['accuracy'])} | {_pct(s['headline'])} | {_pct(s['sample_accuracy'])} "
            f"| {_pct(s['pass_at_n'])} | {_pct(s['unreadable'])} |"
        )
    lines += [
        "",
        "### Per category",
        "",
        "printed %: share of samples in which a code cell printed the reference answer (for a lettered choice, its option "
        "text). read-off %: of those samples, the share answered right. Accuracy well under printed % with a low "
        "read-off means the code found the answer and the model did not carry it into its answer.",
        "",
        "| benchmark | category | items | accuracy % | printed % | read-off % |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for s in results["benchmarks"].values():
        for name, category in s["categories"].items():
            read = category["read_off"]  # None where no sample printed the reference: nothing to read off
            lines.append(f"| {s['name']} | {name} | {category['items']} | {_pct(category['accuracy'])} "
                         f"| {_pct(category['printed_reference'])} | {'-' if read is None else _pct(read)} |")
    lines += [
        "",
        "## Format adherence",
        "",
        "Share of samples with a code block, with code that executed without error, with an `<answer>` tag, "
        "and with both executable code and an answer tag (what cold-start SFT should teach).",
        "",
        "| benchmark | code block % | code ran % | answer tag % | adherence % |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for s in results["benchmarks"].values():
        f = s["format"]
        lines.append(
            f"| {s['name']} | {_pct(f['code_block'])} | {_pct(f['code_ran'])} | {_pct(f['answer_tag'])} | {_pct(f['adherence'])} |"
        )
    lines += [
        "",
        "## Tool use",
        "",
        "| benchmark | tool calls / sample | executed cells | failed cells | exec failure % | mean turns | mean s / sample | stop reasons |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for s in results["benchmarks"].values():
        reasons = ", ".join(f"{k}: {v}" for k, v in s["stop_reasons"].items())
        lines.append(
            f"| {s['name']} | {s['tool_calls_per_sample']:.2f} | {s['tool_calls']} | {s['failed_calls']} | {_pct(s['exec_failure_rate'])} "
            f"| {s['mean_turns']:.2f} | {s['mean_seconds']:.2f} | {reasons} |"
        )
    plots = results.get("files", {}).get("plots", {})
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"![{name}]({Path(file).relative_to(path.parent)})" for name, file in plots.items()]
    viewer = results.get("files", {}).get("viewer")
    if viewer:
        lines += ["", f"Trajectories (filter by correct / wrong): [{Path(viewer).name}]({Path(viewer).relative_to(path.parent)})"]
    comparison = results.get("compared_with")
    if comparison:
        lines += ["", comparison_markdown(results, comparison["results"], comparison["name"])]
    return atomic_write_text(path, "\n".join(lines) + "\n", fsync=True)


COMPARED = (("accuracy", "accuracy %"), ("adherence", "format adherence %"), ("code_ran", "code ran %"), ("answer_tag", "answer tag %"))


def _metric(summary: dict[str, Any], name: str) -> float:
    return summary["accuracy"] if name == "accuracy" else summary["format"][name]


def comparison_rows(results: dict[str, Any], baseline: dict[str, Any]) -> list[tuple[str, str, float, float]]:
    """(benchmark, metric, baseline value, this run's value) for benchmarks present in both runs."""
    rows = []
    for name, summary in results["benchmarks"].items():
        before = baseline.get("benchmarks", {}).get(name)
        if before is not None:
            rows += [(name, label, _metric(before, key), _metric(summary, key)) for key, label in COMPARED]
    return rows


def comparison_table(results: dict[str, Any], baseline: dict[str, Any], baseline_name: str) -> Table:
    table = Table(title=f"this run vs {baseline_name}", title_justify="left")
    for column in ("benchmark", "metric", "before", "now", "change"):
        table.add_column(column, justify="left" if column in ("benchmark", "metric") else "right", no_wrap=True)
    for name, metric, before, now in comparison_rows(results, baseline):
        change = 100 * (now - before)
        table.add_row(
            name, metric, _pct(before), _pct(now), f"[{'green' if change > 0 else 'red' if change < 0 else 'default'}]{change:+.1f}[/]"
        )
    return table


def comparison_markdown(results: dict[str, Any], baseline: dict[str, Any], baseline_name: str) -> str:
    lines = [
        f"## Compared with {baseline_name}",
        "",
        "| benchmark | metric | before | now | change (points) |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    lines += [f"| {n} | {m} | {_pct(b)} | {_pct(a)} | {100 * (a - b):+.1f} |" for n, m, b, a in comparison_rows(results, baseline)]
    return "\n".join(lines) + "\n"
