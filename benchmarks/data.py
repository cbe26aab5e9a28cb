"""Re-execute-and-verify throughput: how fast can `codedance filter` replay trajectories' code in the real sandbox?

Target (issue 5): the 34k trajectories of CodeDance-SFT in <= 30 minutes on 2 cores, i.e. >= 19 trajectories/s.

    .venv/bin/python benchmarks/data.py                       # 2,000 procedural trajectories (generated once, cached)
    .venv/bin/python benchmarks/data.py --n 200 --baseline-n 50 --json

Both paths stream trajectories from parquet, open a fresh sandbox session per trajectory,
re-run every code step and compare with the recorded observations (the filter's
`reexecute`). The baseline does one trajectory at a time; the concurrent path keeps
`--concurrency` trajectories in flight over the sandbox's warm workers, as the filter does.
Both are measured in the same run, on the same data and machine.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import resource
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codedance_cli.data.streaming import bounded_map  # noqa: E402
from codedance_cli.filter.checks import reexecute  # noqa: E402
from codedance_cli.recipes.common import SandboxConfig  # noqa: E402
from codedance_cli.recipes.synth import SynthRecipe  # noqa: E402
from codedance_cli.sandbox import create_sandbox  # noqa: E402
from codedance_cli.synth.procedural_flow import synth_procedural  # noqa: E402
from codedance_cli.trajectory.store import count_trajectories, iter_trajectories  # noqa: E402

TARGET_PER_S = 34_000 / (30 * 60)


async def ensure_data(path: Path, n: int, sandbox_config: SandboxConfig, console: Console) -> float:
    """Synthesize the n procedural trajectories once (resumes); returns seconds spent."""
    have = count_trajectories(path) if path.exists() else 0
    if have >= n:
        return 0.0
    console.print(f"generating {n - have} procedural trajectories into {path} (once; cached for later runs)")
    recipe = SynthRecipe(output=path, num_items=n, seed=2024, concurrency=8, sandbox=sandbox_config)
    started = time.perf_counter()
    async with create_sandbox(sandbox_config) as sandbox:
        await synth_procedural(recipe, sandbox)
    return time.perf_counter() - started


async def replay(path: Path, n: int, concurrency: int, sandbox_config: SandboxConfig) -> dict:
    """Re-execute and verify the first n trajectories with `concurrency` in flight."""
    ok = failed = 0
    reasons: dict[str, int] = {}
    async with create_sandbox(sandbox_config) as sandbox:
        if hasattr(sandbox, "start"):
            await sandbox.start()  # starting warm workers is not part of the measurement
        cpu_before = _cpu_seconds()
        started = time.perf_counter()
        stream = itertools.islice(iter_trajectories(path), n)
        async for _, reason in bounded_map(stream, lambda traj: reexecute(traj, sandbox), concurrency):
            if reason is None:
                ok += 1
            else:
                failed += 1
                reasons[reason.split(":")[0]] = reasons.get(reason.split(":")[0], 0) + 1
        seconds = time.perf_counter() - started
        cpu = _cpu_seconds() - cpu_before  # before close: the workers are still alive to be read
    n = ok + failed
    return {"n": n, "reproduced": ok, "differed": failed, "reasons": reasons, "seconds": round(seconds, 2),
            "per_s": round(n / seconds, 2), "cpu_ms_per_traj": round(1000 * cpu / n, 1),
            "two_core_capacity_per_s": round(2 * n / cpu, 1)}


def _cpu_seconds() -> float:
    """CPU time of this process, its reaped children, and all its live descendants (each with what it reaped).

    Sandbox sessions are forked and reaped by the workers, so a worker's cutime/cstime holds them; a
    load-independent measure of the work, unlike wall-clock time on a shared machine.
    """
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        times[pid] = sum(int(v) for v in fields[11:15]) / tick  # utime, stime, cutime, cstime
    mine = {os.getpid()}
    changed = True
    while changed:
        changed = False
        for pid, parent in parents.items():
            if parent in mine and pid not in mine:
                mine.add(pid)
                changed = True
    own, reaped = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    # reaped children (e.g. workers recycled after sessions_per_worker) no longer show in /proc
    finished = reaped.ru_utime + reaped.ru_stime + own.ru_utime + own.ru_stime
    return finished + sum(times.get(pid, 0.0) for pid in mine if pid != os.getpid())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="trajectories for the concurrent path")
    parser.add_argument("--baseline-n", type=int, default=200, help="trajectories for the sequential baseline")
    parser.add_argument("--concurrency", type=int, default=8, help="trajectories in flight (concurrent path)")
    parser.add_argument("--workers", type=int, default=2, help="sandbox warm workers (one per core)")
    parser.add_argument("--data", type=Path, default=Path(".cache/bench/procedural"), help="cached trajectories")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    console = Console(stderr=args.json, width=160)
    # no worker recycling during the measurement, so every worker's CPU time can be read from /proc
    # (a recycled worker inside bubblewrap is killed, and its time never reaches us); recycling costs ~1 s per 500 sessions
    config = SandboxConfig(workers=args.workers, sessions_per_worker=max(args.n, args.baseline_n) + 10)
    data = args.data.with_name(f"{args.data.name}-{args.n}")
    generation_s = asyncio.run(ensure_data(data, args.n, config, console))
    baseline = asyncio.run(replay(data, args.baseline_n, 1, config))
    concurrent = asyncio.run(replay(data, args.n, args.concurrency, config))
    rows = [("sequential (baseline)", 1, baseline), ("concurrent (filter path)", args.concurrency, concurrent)]
    result = {
        "cpu_count": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "target_per_s": round(TARGET_PER_S, 2),
        "generation_s": round(generation_s, 1),
        "baseline": baseline,
        "concurrent": {**concurrent, "concurrency": args.concurrency},
        "speedup": round(concurrent["per_s"] / baseline["per_s"], 2),
        "projected_34k_minutes": round(34_000 / concurrent["per_s"] / 60, 1),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    table = Table(title=f"re-execute and verify: procedural trajectories, {args.workers} sandbox workers, "
                        f"{os.cpu_count()} cores (load {result['load_avg_1m']})")
    for column in ("path", "in flight", "trajectories", "reproduced", "seconds", "traj/s", "vs baseline", "34k takes",
                   "CPU ms/traj", "2-core capacity"):
        table.add_column(column, justify="right" if column != "path" else "left")
    for name, flight, r in rows:
        table.add_row(name, str(flight), str(r["n"]), str(r["reproduced"]), f"{r['seconds']:.1f}", f"{r['per_s']:.1f}",
                      f"{r['per_s'] / baseline['per_s']:.2f}x", f"{34_000 / r['per_s'] / 60:.1f} min",
                      f"{r['cpu_ms_per_traj']:.0f}", f"{r['two_core_capacity_per_s']:.1f}/s")
    console.print(table)
    verdict = "meets" if concurrent["per_s"] >= TARGET_PER_S else "misses"
    console.print(f"target >= {TARGET_PER_S:.1f} traj/s (34k in 30 min): concurrent path {verdict} it at wall-clock "
                  f"{concurrent['per_s']:.1f}/s under load {result['load_avg_1m']}; CPU-bound capacity of 2 idle cores: "
                  f"{concurrent['two_core_capacity_per_s']:.1f}/s")


if __name__ == "__main__":
    main()
