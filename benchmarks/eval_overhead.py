"""What `codedance eval` costs on top of the tool loop it drives.

Baseline: the loop's own `run_many` over N tasks (scripted model with a fixed latency per turn, the real
local sandbox), trajectories dropped as they come. Measured: `codedance eval` over the same N items in a
public format (CountBenchQA-style jsonl) — loading, one fsynced JSONL line per sample, scoring, the report,
plots and the HTML viewer included — plus a re-score of the finished run (what a resume or a rule change costs).

    .venv/bin/python benchmarks/eval_overhead.py [--items 200] [--concurrency 16] [--latency 0.05] [--repeat 2]

Runs alternate (loop, eval, loop, eval, ...) and the best of each is reported, because the 2 shared cores are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw
from rich.console import Console
from rich.table import Table

from codedance_cli.clients import ScriptedClient
from codedance_cli.eval.benchmarks import get_benchmark
from codedance_cli.eval.run import run
from codedance_cli.trajectory.schema import question_text
from codedance_cli.loop.runner import run_many
from codedance_cli.recipes import load_recipe
from codedance_cli.recipes.common import LoopConfig, SandboxConfig
from codedance_cli.sandbox import create_sandbox

CODE = (
    "<think>Count the dots.</think>\n```python\nimport numpy as np\na = np.asarray(input_image.convert('L'))\nprint((a < 128).sum())\n```"
)


def write_counting_set(folder: Path, items: int) -> Path:
    (folder / "images").mkdir(parents=True)
    rows = []
    for index in range(items):
        image = Image.new("RGB", (128, 96), "white")
        draw = ImageDraw.Draw(image)
        for dot in range(index % 9 + 1):
            draw.ellipse([8 + 12 * dot, 40, 16 + 12 * dot, 48], fill="black")
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        (folder / "images" / f"{index}.png").write_bytes(buffer.getvalue())
        rows.append({"image": f"images/{index}.png", "question": f"How many dots are there? (item {index})", "number": index % 9 + 1})
    path = folder / "test.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per scripted model turn")
    parser.add_argument("--repeat", type=int, default=2, help="alternating runs of each path; the best is reported")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="eval-overhead-"))
    data = write_counting_set(root / "counting", args.items)
    tasks = list(get_benchmark("counting").load(data))
    scripts = {question_text(task): [CODE, f"<answer>{task.ground_truth}</answer>"] for task in tasks}
    loop = LoopConfig(max_turns=3, concurrency=args.concurrency)
    sandbox_config = SandboxConfig(workers=2)

    async def baseline() -> float:
        client = ScriptedClient(scripts, latency_s=args.latency)
        async with create_sandbox(sandbox_config) as sandbox:
            started = time.perf_counter()
            async for _ in run_many(tasks, client, sandbox, loop):
                pass
            return time.perf_counter() - started

    recipe_path = root / "eval.yaml"
    recipe_path.write_text(json.dumps({
        "stage": "eval", "model": {"endpoint": "http://127.0.0.1:9/v1"}, "output_dir": str(root / "out"),
        "benchmarks": [{"name": "counting", "path": str(data)}], "loop": loop.model_dump(), "sandbox": sandbox_config.model_dump(),
    }))  # fmt: skip
    recipe = load_recipe(recipe_path, [])
    loop_times, eval_times, generate_times, rescore_times = [], [], [], []
    quiet = open("/dev/null", "w")  # noqa: SIM115 (the run prints its table; the benchmark prints its own)
    for _ in range(args.repeat):
        loop_times.append(asyncio.run(baseline()))
        stdout, sys.stdout = sys.stdout, quiet
        try:
            started = time.perf_counter()
            results = run(recipe, client=ScriptedClient(scripts, latency_s=args.latency), json_output=True, restart=True)
            eval_times.append(time.perf_counter() - started)
            generate_times.append(results["timings"]["generate_s"])
            started = time.perf_counter()
            run(recipe, client=ScriptedClient(scripts), json_output=True)
            rescore_times.append(time.perf_counter() - started)
        finally:
            sys.stdout = stdout
    loop_s, eval_s, generate_s, rescore_s = min(loop_times), min(eval_times), min(generate_times), min(rescore_times)
    assert results["benchmarks"]["counting"]["accuracy"] == 1.0

    # eval's own cost per sample, free of sandbox noise: encoding + appending real logged samples again
    from codedance_cli.eval.samples import SampleLog

    logged = [json.loads(line) for line in (root / "out" / "samples.jsonl").read_text().splitlines()]
    with SampleLog(root / "out" / "samples.jsonl") as source:
        records = list(source.records())
    started = time.perf_counter()
    with SampleLog(root / "append-check.jsonl") as sink:
        for record in records:
            sink.append(record)
    append_ms = 1000 * (time.perf_counter() - started) / len(records)
    assert len(logged) == len(records)

    n = args.items
    table = Table(
        title=f"eval overhead: {n} items, concurrency {args.concurrency}, {args.latency}s/turn, local sandbox, best of {args.repeat}"
    )
    for column in ("path", "wall s", "items/s", "vs loop"):
        table.add_column(column, justify="right" if column != "path" else "left")
    table.add_row("loop run_many (baseline)", f"{loop_s:.2f}", f"{n / loop_s:.1f}", "1.00x")
    table.add_row(
        "codedance eval: generation phase (loop + log)", f"{generate_s:.2f}", f"{n / generate_s:.1f}", f"{loop_s / generate_s:.2f}x"
    )
    table.add_row("codedance eval: whole run (+ load, score, report)", f"{eval_s:.2f}", f"{n / eval_s:.1f}", f"{loop_s / eval_s:.2f}x")
    table.add_row("re-score finished run", f"{rescore_s:.2f}", f"{n / rescore_s:.1f}", "-")
    Console().print(table)
    Console().print(f"log append per sample (encode + write, fsync batched): {append_ms:.2f} ms")


if __name__ == "__main__":
    main()
