"""Rollout throughput: does running code in the sandbox slow a rollout down?

A ScriptedClient replays realistic CodeDance turns (crop + zoom, numpy stats,
OpenCV edges, answer) with a fixed latency per turn, standing in for a model
server; the sandbox is the real local backend. Three runs on the same tasks:

- generation only: the same turns, code not executed (an instant sandbox) — the
  ceiling a rollout could reach if tools were free;
- sequential: one trajectory at a time with the real sandbox (a naive loop);
- concurrent: `--concurrency` trajectories in flight with the real sandbox.

Target: concurrent >= 0.9x the generation-only throughput at 32 in flight,
i.e. sandbox calls hide behind the generation of other trajectories.

    .venv/bin/python benchmarks/rollout.py [--tasks 64] [--concurrency 32] [--latency 2.0] [--jitter 0] [--workers 2]

With fixed latency every trajectory generates in lockstep, so all code cells
arrive at the sandbox in one burst: the worst case for overlap. `--jitter`
spreads turn latencies (same mean, same draws in every run), as a real server does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codedance_cli.clients import ScriptedClient  # noqa: E402
from codedance_cli.loop.runner import run_many  # noqa: E402
from codedance_cli.recipes.common import LoopConfig, SandboxConfig  # noqa: E402
from codedance_cli.sandbox import create_sandbox  # noqa: E402
from codedance_cli.sandbox.base import InputImage, Sandbox, SandboxSession  # noqa: E402
from codedance_cli.trajectory.schema import Observation, Trajectory, encode_image  # noqa: E402

TURNS = [
    "<think>Zoom into the upper-left region where the marks are.</think>\n"
    "```python\nw, h = input_image.size\nzoom = input_image.crop((0, 0, w // 2, h // 2)).resize((w, h))\nzoom\n```",
    "<think>Measure the red coverage.</think>\n```python\nimport numpy as np\narr = np.asarray(input_image.convert('RGB')).astype(float)\n"
    "red = (arr[..., 0] > 180) & (arr[..., 1] < 90)\nprint('red fraction', round(float(red.mean()), 4), 'mean', arr.mean(axis=(0, 1)).round(1))\n```",
    "<think>Edges to count the shapes.</think>\n```python\nimport cv2\ngray = cv2.cvtColor(np.asarray(input_image.convert('RGB')), cv2.COLOR_RGB2GRAY)\n"
    "edges = cv2.Canny(gray, 50, 150)\nn, _ = cv2.connectedComponents((gray < 200).astype('uint8'))\nprint('components', n - 1)\nImage.fromarray(edges)\n```",
    "<think>Three red marks.</think>\n<answer>3</answer>",
]


def make_image(seed: int) -> bytes:
    image = Image.new("RGB", (640, 480), "white")
    draw = ImageDraw.Draw(image)
    for k in range(3):
        x, y = 60 + (seed * 37 + k * 150) % 520, 60 + (seed * 53 + k * 110) % 360
        draw.ellipse((x - 20, y - 20, x + 20, y + 20), fill=(230, 30, 30))
    return encode_image(image)


def make_tasks(count: int) -> list[Trajectory]:
    return [Trajectory(task_id=f"bench-{i}", question=f"How many red marks are in image {i}?", images=[make_image(i)]) for i in range(count)]


class InstantSession(SandboxSession):
    async def run(self, code: str, timeout_s: float | None = None) -> Observation:
        return Observation(stdout="ok\n")

    async def close(self) -> None:
        return None


class InstantSandbox(Sandbox):
    """The generation-only baseline: code costs nothing."""

    async def open_session(self, images: Sequence[InputImage] = ()) -> SandboxSession:
        return InstantSession()

    async def close(self) -> None:
        return None


async def rollout(tasks: list[Trajectory], sandbox: Sandbox, latency_s: float, concurrency: int, jitter: float = 0.0) -> dict:
    client = ScriptedClient(TURNS, latency_s=latency_s, jitter=jitter)
    config = LoopConfig(concurrency=concurrency, max_turns=len(TURNS), max_total_tokens=1_000_000)
    started = time.perf_counter()
    results = [t async for t in run_many(tasks, client, sandbox, config)]
    wall = time.perf_counter() - started
    failed = [t.task_id for t in results if t.stop_reason != "answer" or t.num_failed_calls]
    if failed:
        raise SystemExit(f"benchmark trajectories failed: {failed[:3]} {results[0].metadata.get('error')}")
    tool_s = sum(t.metadata["loop"]["tool_s"] for t in results)
    traj_wall = sum(t.metadata["loop"]["wall_s"] for t in results)
    return {"trajectories": len(results), "wall_s": wall, "per_s": len(results) / wall, "tool_share": tool_s / traj_wall, "max_in_flight": client.max_in_flight}


async def main(args: argparse.Namespace) -> dict:
    tasks = make_tasks(args.tasks)
    generation_only = await rollout(tasks, InstantSandbox(), args.latency, args.concurrency, args.jitter)
    async with create_sandbox(SandboxConfig(workers=args.workers)) as sandbox:
        await rollout(make_tasks(2), sandbox, 0.0, 2)  # warm the workers (start-up is not rollout time)
        sequential = await rollout(tasks[: args.sequential_tasks], sandbox, args.latency, 1, args.jitter)
        concurrent = await rollout(tasks, sandbox, args.latency, args.concurrency, args.jitter)
    return {"generation_only": generation_only, "sequential": sequential, "concurrent": concurrent}


def table(results: dict, args: argparse.Namespace) -> str:
    base = results["generation_only"]["per_s"]
    rows = [
        "| run | trajectories | in flight | wall s | traj/s | vs generation-only | time in tools (per trajectory) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, label in (("generation_only", "generation only (baseline)"), ("sequential", "sequential, real sandbox"), ("concurrent", "concurrent, real sandbox")):
        r = results[name]
        rows.append(f"| {label} | {r['trajectories']} | {r['max_in_flight']} | {r['wall_s']:.2f} | {r['per_s']:.2f} | {r['per_s'] / base:.2f}x | {r['tool_share']:.1%} |")
    ratio = results["concurrent"]["per_s"] / base
    lost = 1 - ratio
    rows.append("")
    rows.append(f"concurrent / generation-only = {ratio:.2f}x (target >= 0.90x: {'met' if ratio >= 0.9 else 'NOT met'}); "
                f"throughput lost to tools: {lost:.1%}; concurrent / sequential = {results['concurrent']['per_s'] / results['sequential']['per_s']:.1f}x")
    rows.append(f"settings: {len(TURNS)} turns per trajectory ({len(TURNS) - 1} code cells), {args.latency}s per generated turn "
                f"(±{args.jitter:.0%}), "
                f"{args.workers} sandbox workers")
    return "\n".join(rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=64, help="Trajectories in the concurrent and generation-only runs.")
    parser.add_argument("--concurrency", type=int, default=32, help="Trajectories in flight.")
    parser.add_argument("--latency", type=float, default=2.0, help="Seconds per generated turn (the stand-in model's speed).")
    parser.add_argument("--jitter", type=float, default=0.0, help="Spread each turn's latency over ±this fraction (deterministic per turn).")
    parser.add_argument("--sequential-tasks", type=int, default=4, help="Trajectories in the (slow) sequential run.")
    parser.add_argument("--workers", type=int, default=2, help="Local sandbox workers.")
    parser.add_argument("--json", action="store_true", help="Print the raw numbers as JSON too.")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    measured = asyncio.run(main(arguments))
    print(table(measured, arguments))
    if arguments.json:
        print(json.dumps(measured, indent=1))
