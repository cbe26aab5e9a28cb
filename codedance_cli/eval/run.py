"""The `codedance eval` stage, top to bottom.

1. Resolve the recipe's benchmarks (registry, options, files; download or generate when asked).
2. Load every item once (input images dropped, for scoring) and find the samples the log lacks.
3. Produce the missing samples — through the tool loop, or directly without tools — appending each
   to `samples.jsonl` as it finishes; a rerun after an interruption starts from there.
4. Score from the log (rules, optional judge), vote over n samples, summarise per benchmark/category.
5. Write results.json, report.md, plots/ and viewer.html; print the table.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from codedance_cli.clients.base import ModelClient
from codedance_cli.common.atomic import atomic_write_text
from codedance_cli.common.progress import progress_bar
from codedance_cli.console import make_console
from codedance_cli.errors import BadInput, EngineFailed
from codedance_cli.eval.benchmarks import Benchmark, get_benchmark
from codedance_cli.eval.generate import Job, run_direct_mode, run_tool_mode
from codedance_cli.eval.samples import SampleLog, SampleRecord, sample_key
from codedance_cli.eval.scoring import TaskResult, apply_judge, majority_vote, sample_rows, score_sample, summarize
from codedance_cli.recipes.eval import BenchmarkRef, EvalRecipe
from codedance_cli.trajectory.schema import Trajectory

SAMPLES_FILE = "samples.jsonl"
SETTINGS_FILE = "run.json"
FAIL_FAST_SAMPLES = 8  # this many failed samples in a row at the start mean the model is unreachable


def run(
    recipe: EvalRecipe,
    *,
    dry_run: bool = False,
    client: ModelClient | None = None,
    restart: bool = False,
    json_output: bool = False,
    source: str = "recipe",
    baseline: Path | None = None,
) -> dict[str, Any]:
    """Run the eval the recipe describes; returns the results (also written to results.json).

    `client` replaces the recipe's model (tests pass a ScriptedClient: the double sits at the model boundary only).
    `baseline` is an earlier run's output folder (or its results.json) to compare with, e.g. before SFT or mode: direct.
    """
    console = make_console(stderr=json_output)
    benchmarks = [(ref, get_benchmark(ref.name, ref.options, source=source)) for ref in recipe.benchmarks]
    if dry_run:
        plan = dry_run_plan(recipe, benchmarks)
        if json_output:
            print(json.dumps(plan, indent=2))
        else:
            console.print_json(json.dumps(plan))
        return plan
    baseline_results = read_baseline(baseline) if baseline is not None else None
    output_dir = recipe.output_dir
    output_dir.mkdir(parents=True, exist_ok=True)
    if restart:
        (output_dir / SAMPLES_FILE).unlink(missing_ok=True)
    check_settings(recipe, output_dir)
    if recipe.samples > 1 and recipe.loop.temperature == 0:
        console.print("[yellow]samples > 1 with loop.temperature 0: greedy samples are identical, the vote adds nothing[/]")

    timings: dict[str, float] = {}
    clock = time.perf_counter()
    for ref, benchmark in benchmarks:
        prepare_path(ref, benchmark, source)
    tasks, order = load_tasks(benchmarks)
    timings["load_s"], clock = time.perf_counter() - clock, time.perf_counter()
    with SampleLog(output_dir / SAMPLES_FILE) as log:
        pending = sum(
            1 for (name, task_id) in tasks for sample in range(recipe.samples) if not log.is_done(sample_key(name, task_id, sample))
        )
        done_before = len(tasks) * recipe.samples - pending
        if pending:
            console.print(
                f"[bold]eval[/] {len(tasks)} items x {recipe.samples} sample(s), {recipe.mode} mode: "
                f"{pending} to run" + (f", {done_before} already in {log.path}" if done_before else "")
            )
            produce(recipe, benchmarks, log, client, pending, console)
        records = {record.key: record for record in log.records()}
    timings["generate_s"], clock = time.perf_counter() - clock, time.perf_counter()

    results, scored = score(recipe, benchmarks, tasks, order, records, output_dir)
    timings["score_s"], clock = time.perf_counter() - clock, time.perf_counter()
    results["timings"] = timings  # this invocation's phases (report_s is the time to write the outputs)
    if baseline_results is not None:
        results["compared_with"] = {"name": str(baseline), "results": {"benchmarks": baseline_results["benchmarks"]}}
    write_outputs(recipe, benchmarks, tasks, log, results, scored, output_dir)
    timings["report_s"] = time.perf_counter() - clock
    if json_output:
        print(json.dumps(results, indent=2, default=str))
    else:
        from codedance_cli.eval.report import print_table

        print_table(results, console)
        if baseline_results is not None:
            from codedance_cli.eval.report import comparison_table

            console.print(comparison_table(results, baseline_results, str(baseline)))
        console.print(f"[green]wrote[/] {output_dir}/results.json, report.md, plots/, viewer.html")
    return results


def read_baseline(path: Path) -> dict[str, Any]:
    """results.json of an earlier run (the folder or the file), or BadInput."""
    file = path / "results.json" if path.is_dir() else path
    try:
        data = json.loads(file.read_text())
    except FileNotFoundError:
        raise BadInput(f"--baseline: {file} not found (give an earlier eval's output_dir or its results.json)") from None
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), dict):
        raise BadInput(f"--baseline: {file} is not an eval results.json")
    return data


def dry_run_plan(recipe: EvalRecipe, benchmarks: list[tuple[BenchmarkRef, Benchmark]]) -> dict[str, Any]:
    """What a run would do, without loading a model or any benchmark file."""
    from codedance_cli.clients.factory import resolve_backend

    return {
        "model": recipe.model.endpoint or recipe.model.path,
        "backend": resolve_backend(recipe.model),
        "mode": recipe.mode,
        "samples_per_item": recipe.samples,
        "loop": recipe.loop.model_dump(mode="json"),
        "sandbox": recipe.sandbox.backend if recipe.mode == "tool" else None,
        "benchmarks": [
            {
                "name": ref.name,
                "path": str(ref.path),
                "exists": ref.path.exists(),
                "limit": ref.limit,
                "options": benchmark.options.model_dump(mode="json"),
            }
            for ref, benchmark in benchmarks
        ],
        "output_dir": str(recipe.output_dir),
        "resumes_from": str(recipe.output_dir / SAMPLES_FILE) if (recipe.output_dir / SAMPLES_FILE).exists() else None,
    }


def settings_fingerprint(recipe: EvalRecipe) -> dict[str, Any]:
    """What must not change between a run and its resumption (samples from another model must not mix in)."""
    model = recipe.model.model_dump(mode="json", exclude={"request_timeout_s", "max_retries", "api_key_env"})
    loop = recipe.loop.model_dump(mode="json", exclude={"concurrency"})
    return {"mode": recipe.mode, "model": model, "loop": loop}


def check_settings(recipe: EvalRecipe, output_dir: Path) -> None:
    path = output_dir / SETTINGS_FILE
    current = settings_fingerprint(recipe)
    if path.exists() and (output_dir / SAMPLES_FILE).exists():
        previous = json.loads(path.read_text())
        if previous != current:
            changed: list[str] = []
            for section, value in current.items():
                old = previous.get(section)
                if isinstance(value, dict) and isinstance(old, dict):
                    changed += [f"{section}.{key}" for key in sorted(set(value) | set(old)) if value.get(key) != old.get(key)]
                elif value != old:
                    changed.append(section)
            raise BadInput(
                f"{output_dir / SAMPLES_FILE}: holds samples made with other settings ({', '.join(changed) or 'settings'} changed); "
                "use another output_dir, or --restart to discard them"
            )
    atomic_write_text(path, json.dumps(current, indent=2) + "\n", fsync=True)


def prepare_path(ref: BenchmarkRef, benchmark: Benchmark, source: str) -> None:
    """A missing benchmark path is downloaded (download: true) or left to the benchmark (procedural generates)."""
    if ref.path.exists() or (not ref.download and benchmark.creates_missing_path()):
        return
    repo_id = ref.hub_id or benchmark.hub_id
    if not ref.download:
        how = f"set download: true to fetch {repo_id} from the hub" if repo_id else "put the benchmark's public files there"
        raise BadInput(f"{source}: benchmarks[{ref.name}].path: {ref.path} does not exist ({how})")
    if not repo_id:
        raise BadInput(f"{source}: benchmarks[{ref.name}].download: benchmark {ref.name!r} has no hub dataset; set hub_id")
    try:
        from huggingface_hub import snapshot_download

        snapshot_download(repo_id=repo_id, repo_type="dataset", local_dir=str(ref.path), allow_patterns=benchmark.hub_patterns)
    except Exception as exc:  # offline, gated, missing: one line, not a traceback
        reason = " ".join(str(exc).split())[:300]
        raise EngineFailed(
            f"{source}: benchmarks[{ref.name}]: could not download {repo_id} from the hub into {ref.path}: {type(exc).__name__}: {reason}"
        ) from None


def iter_tasks(ref: BenchmarkRef, benchmark: Benchmark) -> Iterator[Trajectory]:
    """The benchmark's items in file order, at most `limit`."""
    return itertools.islice(benchmark.load(ref.path), ref.limit)


def load_tasks(benchmarks: list[tuple[BenchmarkRef, Benchmark]]) -> tuple[dict[tuple[str, str], Trajectory], list[tuple[str, str]]]:
    """Every item without its images (kept light for scoring), keyed by (benchmark, task id), and their order."""
    tasks: dict[tuple[str, str], Trajectory] = {}
    for ref, benchmark in benchmarks:
        if any(name == benchmark.name for name, _ in tasks):
            raise BadInput(f"benchmarks: {benchmark.name!r} is listed twice")
        count = 0
        for task in iter_tasks(ref, benchmark):
            key = (benchmark.name, task.task_id)
            if key in tasks:
                raise BadInput(f"{ref.path}: duplicate item id {task.task_id!r} in benchmark {benchmark.name}")
            tasks[key] = task.model_copy(update={"images": []})
            count += 1
        if count == 0:
            raise BadInput(f"{ref.path}: benchmark {benchmark.name} has no items")
    return tasks, list(tasks)


def produce(
    recipe: EvalRecipe,
    benchmarks: list[tuple[BenchmarkRef, Benchmark]],
    log: SampleLog,
    client: ModelClient | None,
    pending: int,
    console: Console,
) -> None:
    """Run the missing samples, appending each to the log as it finishes, with a progress bar."""

    def jobs() -> Iterator[Job]:  # a second, lazy pass: images are loaded only as slots free up
        for ref, benchmark in benchmarks:
            for task in iter_tasks(ref, benchmark):
                for sample in range(recipe.samples):
                    if not log.is_done(sample_key(benchmark.name, task.task_id, sample)):
                        yield Job(benchmark.name, task, sample)

    own_client = client is None
    if own_client:
        from codedance_cli.clients import create_client

        try:
            client = create_client(recipe.model, concurrency=recipe.loop.concurrency)
        except Exception as exc:  # missing package, unreadable folder, bad config: one line, not a traceback
            first_line = (str(exc).strip().splitlines() or [""])[0]
            raise EngineFailed(
                f"model: cannot load {recipe.model.path or recipe.model.endpoint}: {type(exc).__name__}: {first_line}"
            ) from None
    progress = progress_bar(f"{recipe.mode} eval", console, status=True)
    counts = {"correct_format": 0, "errors": 0, "finished": 0}
    bar = progress.add_task("", total=pending, status="")
    give_up_after = min(FAIL_FAST_SAMPLES, pending)

    def on_sample(record: SampleRecord) -> None:
        log.append(record)
        counts["finished"] += 1
        counts["errors"] += record.trajectory.stop_reason == "error"
        counts["correct_format"] += record.trajectory.final_answer is not None
        progress.update(bar, advance=1, status=f"answered {counts['correct_format']}, errors {counts['errors']}")
        if counts["finished"] == give_up_after and counts["errors"] == give_up_after:
            # the model is not answering at all (endpoint down, model not loadable): stop instead of failing every sample
            error = str(record.trajectory.metadata.get("error", "unknown error"))
            raise EngineFailed(f"model: the first {give_up_after} sample(s) all failed, stopping; last error: {' '.join(error.split())[:300]}")

    async def go() -> None:
        try:
            if recipe.mode == "tool":
                await run_tool_mode(jobs(), client, recipe.sandbox, recipe.loop, on_sample)
            else:
                await run_direct_mode(jobs(), client, recipe.loop, on_sample)
        finally:
            if own_client:
                await client.aclose()

    try:
        with progress:
            asyncio.run(go())
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted: {len(log)} sample(s) are safe in {escape(str(log.path))}; run the same command to resume[/]")
        raise
    if counts["errors"]:
        first = next((r.trajectory.metadata.get("error") for r in log.records() if r.trajectory.stop_reason == "error"), "")
        console.print(
            f"[yellow]{counts['errors']} sample(s) ended in an error (scored as wrong, retried on the next run); first: {escape(str(first))}[/]"
        )


def score(
    recipe: EvalRecipe,
    benchmarks: list[tuple[BenchmarkRef, Benchmark]],
    tasks: dict[tuple[str, str], Trajectory],
    order: list[tuple[str, str]],
    records: dict[str, SampleRecord],
    output_dir: Path,
) -> tuple[dict[str, Any], list]:
    """Per-sample scores, the optional judge, majority votes and summaries -> the results dict."""
    by_name = {benchmark.name: benchmark for _, benchmark in benchmarks}
    scored = []
    for name, task_id in order:
        for sample in range(recipe.samples):
            record = records.get(sample_key(name, task_id, sample))
            if record is not None:
                scored.append(score_sample(by_name[name], tasks[(name, task_id)], record))
    judged = 0
    if recipe.judge is not None:
        judged = asyncio.run(apply_judge(recipe.judge, scored, by_name, tasks, records, output_dir / "judge_cache.jsonl"))
    per_task: dict[tuple[str, str], list] = {}
    for sample in scored:
        per_task.setdefault((sample.benchmark, sample.task_id), []).append(sample)
    results_by_benchmark: dict[str, list[TaskResult]] = {name: [] for name in by_name}
    for (name, task_id), samples in per_task.items():
        results_by_benchmark[name].append(majority_vote(name, task_id, samples))
    summaries = {
        name: summarize(by_name[name], task_results, {task_id: tasks[(name, task_id)] for _, task_id in (k for k in order if k[0] == name)})
        for name, task_results in results_by_benchmark.items()
    }
    results = {
        "model_name": recipe.model.served_name or recipe.model.path or recipe.model.endpoint,
        "model": recipe.model.model_dump(mode="json"),
        "mode": recipe.mode,
        "samples_per_item": recipe.samples,
        "loop": recipe.loop.model_dump(mode="json"),
        "judge": recipe.judge.endpoint if recipe.judge else None,
        "judged_samples": judged,
        "benchmarks": summaries,
        "per_sample": sample_rows([r for name in results_by_benchmark for r in results_by_benchmark[name]]),
    }
    return results, scored


def write_outputs(
    recipe: EvalRecipe,
    benchmarks: list[tuple[BenchmarkRef, Benchmark]],
    tasks: dict[tuple[str, str], Trajectory],
    log: SampleLog,
    results: dict[str, Any],
    scored: list,
    output_dir: Path,
) -> None:
    """Plots, the viewer (with input images restored), results.json and report.md — report last, it links the rest."""
    from codedance_cli.eval.plots import write_plots
    from codedance_cli.eval.report import write_report_md, write_results_json

    files: dict[str, Any] = {"samples": str(output_dir / SAMPLES_FILE)}
    summaries = list(results["benchmarks"].values())
    files["plots"] = {name: str(path) for name, path in write_plots(summaries, output_dir / "plots").items()}
    if recipe.viewer_limit:
        from codedance_cli.eval.viewer import pick_for_viewer, write_viewer

        chosen = pick_for_viewer(scored, recipe.viewer_limit)
        wanted = {(s.benchmark, s.task_id) for s in chosen}
        images: dict[tuple[str, str], list[bytes]] = {}
        for ref, benchmark in benchmarks:
            if any(name == benchmark.name for name, _ in wanted):
                for task in iter_tasks(ref, benchmark):
                    if (benchmark.name, task.task_id) in wanted:
                        images[(benchmark.name, task.task_id)] = task.images
        title = f"codedance eval — {results['model_name']} ({recipe.mode} mode)"
        files["viewer"] = str(write_viewer(output_dir / "viewer.html", chosen, log.full_record, tasks, images, title=title))
    results["files"] = files
    write_results_json(results, output_dir / "results.json")
    write_report_md(results, output_dir / "report.md")
