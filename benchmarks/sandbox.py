"""Per-cell latency and throughput of the sandbox backends against an in-process floor, measured in one run.

Cells: trivial (`x = 1`) and a 1024x1024 crop + save (`Image.open(input_image_path).crop((256, 256, 768, 768))
.save('crop.png')`; in the backends the saved crop also travels back to the caller as an observation image).

Rows:
* floor            exec() in this process, fresh namespace, cwd holding the input image (no isolation at all),
                   one sample after each local-backend cell so that both see the same machine load
* python -c        a fresh interpreter per cell (`subprocess.run([python, '-c', cell])`)
* docker run       a fresh hardened container per cell (only when a Docker engine answers and the image exists)
* local backend    LocalSandbox: one warm session in a bubblewrap-wrapped worker (forked, setuid, seccomp, rlimits)
* docker backend   DockerSandbox: one warm session in a long-lived container (when available)
* throughput       trivial cells/s with 8 concurrent sessions (2 workers / containers)
* open / close     p50 of 20 session life cycles with the 1024x1024 input image (open, one cell, close)

    .venv/bin/python benchmarks/sandbox.py [--n 200] [--slow-n 15] [--no-docker] [--json]

Targets (issue 3): local p50 overhead over the floor <= 5 ms; >= 30x faster than `docker run` on a trivial cell;
>= 200 trivial cells/s on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

from codedance_cli.recipes.common import SandboxConfig
from codedance_cli.sandbox import create_sandbox

TRIVIAL = "x = 1"
CROP = "Image.open(input_image_path).crop((256, 256, 768, 768)).save('crop.png')"
DOCKER_IMAGE = "codedance-sandbox:latest"
DOCKER_FLAGS = ["--network", "none", "--read-only", "--tmpfs", "/tmp:size=256m", "--memory", "2048m", "--memory-swap", "2048m",
                "--cpus", "1", "--pids-limit", "256", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
                "--user", "65534:65534"]


def stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50_ms": statistics.median(ordered) * 1e3, "p95_ms": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1e3,
            "n": len(ordered)}


def make_input(folder: Path) -> Path:
    path = folder / "input_image.png"
    rng = np.random.default_rng(0)
    gradient = np.linspace(0, 255, 1024, dtype=np.float32)
    pixels = np.stack([np.add.outer(gradient, gradient) / 2, np.tile(gradient, (1024, 1)), np.tile(gradient[:, None], (1, 1024))], -1)
    pixels += rng.normal(0, 12, pixels.shape)
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)
    return path


def floor_sample(code: str, workdir: str) -> float:
    """One in-process exec in a fresh namespace with cwd = `workdir` (holding input_image.png)."""
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        namespace = {"Image": Image, "input_image_path": "input_image.png"}
        started = time.perf_counter()
        exec(compile(code, "<cell>", "exec"), namespace)  # noqa: S102 - the floor, trusted code
        return time.perf_counter() - started
    finally:
        os.chdir(cwd)


def python_c(code: str, image: Path, n: int) -> list[float]:
    cell = f"from PIL import Image\ninput_image_path = 'input_image.png'\n{code}"
    samples = []
    with tempfile.TemporaryDirectory() as workdir:
        shutil.copy(image, Path(workdir) / "input_image.png")
        for _ in range(n + 1):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", cell], cwd=workdir, check=True)
            samples.append(time.perf_counter() - started)
    return samples[1:]


def docker_ready() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "image", "inspect", DOCKER_IMAGE], capture_output=True, timeout=30)
    return probe.returncode == 0


def docker_run(code: str, image: Path, n: int) -> list[float]:
    cell = f"import os; os.chdir('/tmp')\nfrom PIL import Image\ninput_image_path = '/in/input_image.png'\n{code}"
    image.parent.chmod(0o755)
    argv = ["docker", "run", "--rm", *DOCKER_FLAGS, "-v", f"{image.parent}:/in:ro", DOCKER_IMAGE, "python3", "-c", cell]
    samples = []
    for _ in range(n + 1):
        started = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        samples.append(time.perf_counter() - started)
    return samples[1:]


async def backend_latency(backend: str, image: Path, n: int, crop_n: int, floor_dir: str) -> dict[str, list[float] | float]:
    """Cells in one warm session, each followed by the same cell in-process (the floor under the same load)."""
    config = SandboxConfig(backend=backend, workers=2)
    if backend == "docker":
        config.docker.pool_size = 2
    async with create_sandbox(config) as sandbox:
        started = time.perf_counter()
        if hasattr(sandbox, "start"):
            await sandbox.start()
        startup = time.perf_counter() - started
        session = await sandbox.open_session([image])
        result: dict[str, list[float] | float] = {"startup_s": startup}
        for name, code, count in (("trivial", TRIVIAL, n), ("crop", CROP, crop_n)):
            samples, floor = [], []
            for _ in range(count + 3):
                started = time.perf_counter()
                observation = await session.run(code)
                samples.append(time.perf_counter() - started)
                assert observation.ok, observation
                floor.append(floor_sample(code, floor_dir))
            result[name], result[f"floor_{name}"] = samples[3:], floor[3:]
        await session.close()
        opens, closes = [], []
        for _ in range(20):  # session life cycle with the 1024x1024 input: open, one cell, close
            started = time.perf_counter()
            session = await sandbox.open_session([image])
            opens.append(time.perf_counter() - started)
            await session.run(TRIVIAL)
            started = time.perf_counter()
            await session.close()
            closes.append(time.perf_counter() - started)
        result["open_ms"], result["close_ms"] = stats(opens)["p50_ms"], stats(closes)["p50_ms"]
        result["throughput"] = await throughput(sandbox, cells_per_session=max(20, n // 2))
    return result


async def throughput(sandbox, cells_per_session: int, sessions: int = 8) -> float:  # noqa: ANN001
    opened = await asyncio.gather(*(sandbox.open_session() for _ in range(sessions)))

    async def drive(session) -> None:  # noqa: ANN001
        for _ in range(cells_per_session):
            await session.run(TRIVIAL)

    await asyncio.gather(*(drive(s) for s in opened))  # warm-up round
    started = time.perf_counter()
    await asyncio.gather(*(drive(s) for s in opened))
    elapsed = time.perf_counter() - started
    await asyncio.gather(*(s.close() for s in opened))
    return sessions * cells_per_session / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="Trivial cells per fast row.")
    parser.add_argument("--crop-n", type=int, default=50, help="Crop cells per fast row.")
    parser.add_argument("--slow-n", type=int, default=15, help="Cells per slow row (python -c, docker run).")
    parser.add_argument("--no-docker", action="store_true", help="Skip the docker rows even when an engine answers.")
    parser.add_argument("--json", action="store_true", help="Print the raw results as JSON.")
    args = parser.parse_args()

    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as scratch, tempfile.TemporaryDirectory() as floor_dir:
        image = make_input(Path(scratch))
        shutil.copy(image, Path(floor_dir) / "input_image.png")
        use_docker = not args.no_docker and docker_ready()
        backends = {backend: asyncio.run(backend_latency(backend, image, args.n, args.crop_n, floor_dir))
                    for backend in ["local"] + (["docker"] if use_docker else [])}
        local = backends["local"]
        rows: dict[str, dict] = {
            # interleaved with the local backend's cells, so both see the same machine load
            "floor (in-process exec)": {"trivial": stats(local["floor_trivial"]), "crop": stats(local["floor_crop"])},
            "python -c per cell": {"trivial": stats(python_c(TRIVIAL, image, args.slow_n)), "crop": stats(python_c(CROP, image, args.slow_n))},
        }
        if use_docker:
            rows["docker run per cell"] = {"trivial": stats(docker_run(TRIVIAL, image, args.slow_n)),
                                           "crop": stats(docker_run(CROP, image, args.slow_n))}
        for backend, raw in backends.items():
            rows[f"{backend} backend"] = {"trivial": stats(raw["trivial"]), "crop": stats(raw["crop"]), "throughput": raw["throughput"],
                                          "startup_s": raw["startup_s"], "open_ms": raw["open_ms"],
                                          "close_ms": raw["close_ms"]}
    report(rows, load, args.json)


def report(rows: dict[str, dict], load: tuple[float, float, float], as_json: bool) -> None:
    if as_json:
        print(json.dumps({"load": load, "rows": rows}, indent=2))
        return
    floor_row = rows["floor (in-process exec)"]
    docker_row = rows.get("docker run per cell")
    table = Table(title=f"sandbox cell latency (load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}, {os.cpu_count()} cores)")
    for column in ("row", "trivial p50 ms", "trivial p95 ms", "overhead vs floor p50 ms", "docker run p50 / row p50",
                   "crop p50 ms", "crop p95 ms", "crop vs floor", "8-session cells/s", "start-up s", "open p50 ms",
                   "close p50 ms"):
        table.add_column(column, justify="left" if column == "row" else "right")
    for name, row in rows.items():
        trivial, crop = row["trivial"], row["crop"]
        speedup = f"{docker_row['trivial']['p50_ms'] / trivial['p50_ms']:.0f}x" if docker_row else "-"
        table.add_row(
            name, f"{trivial['p50_ms']:.2f}", f"{trivial['p95_ms']:.2f}", f"{trivial['p50_ms'] - floor_row['trivial']['p50_ms']:+.2f}",
            speedup, f"{crop['p50_ms']:.1f}", f"{crop['p95_ms']:.1f}", f"{crop['p50_ms'] / floor_row['crop']['p50_ms']:.2f}x",
            f"{row['throughput']:.0f}" if "throughput" in row else "-",
            f"{row['startup_s']:.2f}" if "startup_s" in row else "-", f"{row['open_ms']:.1f}" if "open_ms" in row else "-",
            f"{row['close_ms']:.1f}" if "close_ms" in row else "-",
        )
    Console(width=220).print(table)


if __name__ == "__main__":
    main()
