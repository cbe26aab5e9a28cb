"""The `codedance filter` stage: dedup, re-execute, weak-to-strong sampling; stream kept trajectories out.

Per item, cheapest check first: duplicate (image hash + normalised question; the
first occurrence in input order wins) -> recorded code failures -> re-execution in
the sandbox (must reproduce every observation) -> k weak-model samples (drop
trivial, label difficulty). Every decision is appended to
`<output>/filter_decisions.jsonl` as it is made, so an interrupted run resumes:
decided items are skipped, and their outcomes still count in the report.
"""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import aclosing
from pathlib import Path
from typing import Any

from rich.console import Console

from codedance_cli.common.progress import progress_bar
from codedance_cli.console import make_console
from codedance_cli.errors import BadInput
from codedance_cli.filter.report import FilterReport, write_report
from codedance_cli.recipes.filter import FilterRecipe

DECISIONS_FILE = "filter_decisions.jsonl"


def run(recipe: FilterRecipe, *, dry_run: bool = False, json_output: bool = False) -> FilterReport | None:
    """Filter `recipe.input` into `recipe.output`; print the report (table or JSON) and write report.json + histogram.png."""
    if not dry_run:
        from codedance_cli.data.sources import check_dataref

        check_dataref(recipe.input, "input.path")
    if recipe.hard_max_pass_rate > recipe.medium_max_pass_rate:
        raise BadInput("filter recipe: field 'hard_max_pass_rate': must not exceed medium_max_pass_rate")
    console = make_console(stderr=json_output)
    report_dir = recipe.report_dir or recipe.output / "report"
    if dry_run:
        plan = {"input": str(recipe.input.path), "output": str(recipe.output), "report_dir": str(report_dir),
                "dedup": recipe.dedup, "reexecute": recipe.reexecute,
                "weak": None if recipe.weak_model is None else {"model": recipe.weak_model.model_dump(mode="json"),
                                                                 "mode": recipe.weak_mode, "k": recipe.samples_per_item}}
        print(json.dumps(plan, indent=2))
        return None
    report = asyncio.run(_filter(recipe, console))
    json_path, png_path = write_report(report, report_dir)
    if json_output:
        print(json.dumps({**report.as_dict(), "report_json": str(json_path), "histogram_png": str(png_path)}, indent=2))
    else:
        report.print(console)
        console.print(f"report: {json_path}  histogram: {png_path}")
    return report


def _load_decisions(path: Path) -> dict[str, dict[str, Any]]:
    decisions: dict[str, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
                decisions[entry["task_id"]] = entry
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a torn last line from an interruption
    return decisions


def _count(report: FilterReport, decision: dict[str, Any]) -> None:
    if decision["kept"]:
        report.add_kept(decision.get("turns", 0), decision.get("difficulty"), decision.get("pass_rate"))
    else:
        report.dropped[str(decision["reason"]).split(":")[0]] += 1


async def _filter(recipe: FilterRecipe, console: Console) -> FilterReport:
    from codedance_cli.data.sources import iter_dataref
    from codedance_cli.common.concurrency import bounded_map
    from codedance_cli.filter.checks import dedup_key, recorded_failure, reexecute
    from codedance_cli.sandbox import create_sandbox
    from codedance_cli.trajectory.store import TrajectoryWriter

    started = time.perf_counter()
    report = FilterReport(input=str(recipe.input.path), output=str(recipe.output))
    client = None
    if recipe.weak_model is not None:
        from codedance_cli.clients import create_client

        client = create_client(recipe.weak_model, concurrency=recipe.concurrency * recipe.samples_per_item)
    weak_name = None if recipe.weak_model is None else (recipe.weak_model.served_name or recipe.weak_model.path or recipe.weak_model.endpoint)

    with TrajectoryWriter(recipe.output, shard_size=64) as writer:
        decisions_path = recipe.output / DECISIONS_FILE
        previous = {tid: d for tid, d in _load_decisions(decisions_path).items() if not d["kept"] or tid in writer.done_ids}
        seen_keys = {d["key"] for d in previous.values() if d.get("key") and d.get("reason") != "duplicate"}
        log = decisions_path.open("a", encoding="utf-8")

        def items():
            for traj in iter_dataref(recipe.input):
                report.seen += 1
                if traj.task_id in previous:
                    report.resumed += 1
                    _count(report, previous[traj.task_id])
                    progress.advance(bar, 1)
                    continue
                key = dedup_key(traj)
                duplicate = recipe.dedup and key in seen_keys
                seen_keys.add(key)
                yield traj, key, duplicate

        async def decide(entry) -> dict[str, Any]:
            traj, key, duplicate = entry
            decision: dict[str, Any] = {"task_id": traj.task_id, "kept": False, "key": key, "turns": len(traj.turns)}
            if duplicate:
                return {**decision, "reason": "duplicate"}
            if traj.num_tool_calls and not recipe.allow_failed_steps and recorded_failure(traj):
                return {**decision, "reason": "code_failed"}
            if recipe.reexecute and traj.num_tool_calls:
                try:
                    reason = await reexecute(traj, sandbox)
                except Exception as exc:  # the sandbox itself failed: this item is undecidable, say so
                    reason = f"sandbox_error: {type(exc).__name__}: {exc}"[:300]
                if reason is not None:
                    return {**decision, "reason": reason}
            if client is not None:
                if traj.ground_truth is None:
                    return {**decision, "reason": "no_ground_truth"}
                from codedance_cli.filter.weak import difficulty_label, pass_rate

                correct, k = await pass_rate(traj, client, sandbox, recipe)
                rate = correct / k
                decision.update(pass_rate=rate, weak_correct=correct, weak_samples=k)
                if recipe.drop_trivial and correct == k:
                    return {**decision, "reason": "trivial"}
                decision["difficulty"] = difficulty_label(rate, recipe)
                traj.metadata = {**traj.metadata, "pass_rate": rate, "difficulty": decision["difficulty"],
                                 "weak_samples": k, "weak_model": weak_name, "weak_mode": recipe.weak_mode}
            traj.metadata = {**traj.metadata, "dedup_key": key, "filter": {"reexecuted": bool(recipe.reexecute and traj.num_tool_calls)}}
            writer.write(traj)
            return {**decision, "kept": True, "reason": None}

        total = recipe.input.limit
        if total is None and recipe.input.format == "trajectory":
            from codedance_cli.trajectory.store import count_trajectories

            total = count_trajectories(recipe.input.path)
        try:
            with progress_bar("filter", console) as progress:
                bar = progress.add_task("", total=total)
                async with create_sandbox(recipe.sandbox) as sandbox:
                    async with aclosing(bounded_map(items(), decide, recipe.concurrency)) as decided:
                        async for _, decision in decided:
                            log.write(json.dumps(decision) + "\n")
                            log.flush()
                            _count(report, decision)
                            progress.advance(bar, 1)
        finally:
            log.close()
            if client is not None and hasattr(client, "aclose"):
                await client.aclose()
    report.seconds = time.perf_counter() - started
    return report
