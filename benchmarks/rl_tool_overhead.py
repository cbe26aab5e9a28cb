"""What `codedance rl` adds on top of the sandbox per tool call, and how fast the reward scores.

Measures, in one run on the real local sandbox:
  baseline   SandboxSession.run on one open session (the sandbox alone)
  sessions   SandboxSessions.run (per-trajectory session lookup + guard timeout)
  verl tool  CodeDanceSandboxTool create -> execute -> release with verl's AgentData (+ rendering, PIL images)
for a text cell and an image cell, then the reward: rollouts scored per second by score_batch on rule-matched items (one batch).

Usage: .venv/bin/python benchmarks/rl_tool_overhead.py [--calls 100]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from PIL import Image

from codedance_cli.recipes.common import SandboxConfig
from codedance_cli.recipes.rl import RewardConfig
from codedance_cli.rewards.score import RolloutForReward, score_batch
from codedance_cli.engines.sandbox_sessions import SandboxSessions
from codedance_cli.sandbox import create_sandbox

CELLS = {"text": "print(sum(range(1000)))", "image": "input_image.crop((0, 0, 128, 128))"}


async def time_calls(call, calls: int) -> list[float]:
    for _ in range(3):  # warm-up
        await call()
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def measure(calls: int) -> dict[tuple[str, str], list[float]]:
    from verl.experimental.agent_loop.tool_agent_loop import AgentData

    from codedance_cli.engines.verl.tool import CodeDanceSandboxTool

    config = SandboxConfig(workers=1, timeout_s=15)
    image = Image.new("RGB", (512, 384), "gray")
    results: dict[tuple[str, str], list[float]] = {}
    for kind, code in CELLS.items():
        sandbox = create_sandbox(config)
        session = await sandbox.open_session([image])
        results[("baseline", kind)] = await time_calls(lambda: session.run(code), calls)
        await session.close()
        await sandbox.close()

        sessions = SandboxSessions(config)
        results[("sessions", kind)] = await time_calls(lambda: sessions.run("bench", code, lambda: [image]), calls)
        await sessions.close()

        tool = CodeDanceSandboxTool({"type": "native", "sandbox": config.model_dump()}, None)
        data = AgentData(messages=[], image_data=[image], video_data=None, audio_data=None, mm_processor_kwargs=None,
                         metrics={}, request_id="bench", tools_kwargs={})  # fmt: skip

        async def tool_call() -> None:
            instance_id, _ = await tool.create()
            await tool.execute(instance_id, {"code": code}, agent_data=data)
            await tool.release(instance_id)

        results[("verl tool", kind)] = await time_calls(tool_call, calls)
        await tool.close()
    return results


async def reward_rate(items: int) -> float:
    config = RewardConfig()
    response = '<think>a</think><tool_call>{"name": "execute_python_code"}</tool_call><tool_response>\n42\n</tool_response><think>b</think><answer>42</answer>'
    rollouts = [RolloutForReward(response, "42", "number", group_id=str(index // 8)) for index in range(items)]
    started = time.perf_counter()
    await score_batch(rollouts, config)
    return items / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100)
    args = parser.parse_args()
    results = asyncio.run(measure(args.calls))
    print(f"calls per row: {args.calls} (after 3 warm-up calls); times in ms")
    print("| path | cell | p50 | p95 | vs baseline p50 |")
    print("| --- | --- | ---: | ---: | ---: |")
    for kind in CELLS:
        base = statistics.median(results[("baseline", kind)])
        for path in ("baseline", "sessions", "verl tool"):
            samples = sorted(results[(path, kind)])
            p50, p95 = statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]
            print(f"| {path} | {kind} | {p50:.1f} | {p95:.1f} | {p50 / base:.2f}x |")
    print(f"\nreward (rule-matched, no judge): {asyncio.run(reward_rate(2000)):.0f} rollouts/s")


if __name__ == "__main__":
    main()
