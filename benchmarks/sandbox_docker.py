"""What the Docker backend costs per cell, against `docker run` per call and an in-process floor.

Cells: `pass`-like trivial (`x = 1`) and a 1024x1024 crop + save (`Image.open(input_image_path).crop(...)
.save('crop.png')`, the saved PNG travels back as an observation image). Measured in one run:

* floor       exec() in this process (no isolation at all)
* docker run  one `docker run --rm` with the same hardening flags per cell (CLI, fresh python3 each time)
* backend     DockerSandbox (runc, and runsc when registered): one long-lived container, forked session
* start-up    container create + start until the worker inside is ready (imports done)
* throughput  trivial cells/s with 8 concurrent sessions over `--pool` containers

    .venv/bin/python benchmarks/sandbox_docker.py [--n 100] [--docker-run-n 15] [--no-runsc] [--json]

The image must exist (`codedance sandbox build-image`). Ratios are `docker run` p50 / this row's p50.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

from codedance_cli.recipes.common import DockerSandboxConfig, SandboxConfig
from codedance_cli.sandbox.docker_backend import DockerSandbox

TRIVIAL = "x = 1"
CROP = "Image.open(input_image_path).crop((256, 256, 768, 768)).save('crop.png')"
DOCKER_FLAGS = ["--network", "none", "--read-only", "--tmpfs", "/tmp:size=256m", "--memory", "2048m", "--memory-swap", "2048m",
                "--cpus", "1", "--pids-limit", "256", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
                "--user", "10001:10001", "-w", "/tmp"]


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e3, ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1e3


def test_image(folder: Path) -> Path:
    path = folder / "input_image.png"
    folder.chmod(0o755)  # readable by the container's unprivileged user (docker run row)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (1024, 1024, 3), dtype=np.uint8)).save(path)
    return path


def floor(code: str, image_path: Path, n: int) -> list[float]:
    """exec() in-process in a fresh namespace, cwd = a temp dir holding the input image."""
    import os

    samples = []
    with tempfile.TemporaryDirectory() as workdir:
        (Path(workdir) / "input_image.png").write_bytes(image_path.read_bytes())
        cwd = os.getcwd()
        os.chdir(workdir)
        try:
            for _ in range(n + 3):
                namespace = {"Image": Image, "input_image_path": "input_image.png"}
                started = time.perf_counter()
                exec(compile(code, "<cell>", "exec"), namespace)
                samples.append(time.perf_counter() - started)
        finally:
            os.chdir(cwd)
    return samples[3:]


def docker_run(code: str, image_path: Path, n: int, image: str) -> list[float]:
    """A fresh hardened container per cell through the CLI, the input image bind-mounted read-only."""
    cell = f"import os; os.chdir('/tmp'); input_image_path = '/in/input_image.png'\nfrom PIL import Image\n{code}"
    argv = ["docker", "run", "--rm", *DOCKER_FLAGS, "-v", f"{image_path.parent}:/in:ro", image, "python3", "-c", cell]
    samples = []
    for index in range(n + 1):
        started = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        if index:  # the first one warms the page cache
            samples.append(time.perf_counter() - started)
    return samples


async def backend(code: str, image_path: Path, n: int, config: SandboxConfig) -> tuple[list[float], float]:
    """Cells through one DockerSandbox session; also returns the pool start-up time."""
    async with DockerSandbox(config) as sandbox:
        started = time.perf_counter()
        await sandbox.start()
        startup = time.perf_counter() - started
        async with await sandbox.open_session([image_path]) as session:
            samples = []
            for index in range(n + 3):
                started = time.perf_counter()
                observation = await session.run(code)
                if not observation.ok:
                    raise RuntimeError(f"{observation.error_type}: {observation.error}")
                if index >= 3:
                    samples.append(time.perf_counter() - started)
    return samples, startup


async def throughput(config: SandboxConfig, sessions: int = 8, cells: int = 50) -> float:
    async with DockerSandbox(config) as sandbox:
        await sandbox.start()
        opened = [await sandbox.open_session() for _ in range(sessions)]

        async def drive(session) -> None:
            for _ in range(cells):
                await session.run(TRIVIAL)

        started = time.perf_counter()
        await asyncio.gather(*(drive(s) for s in opened))
        elapsed = time.perf_counter() - started
        for session in opened:
            await session.close()
    return sessions * cells / elapsed


def runsc_registered() -> bool:
    out = subprocess.run(["docker", "info", "--format", "{{json .Runtimes}}"], capture_output=True, text=True).stdout
    return '"runsc"' in out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="Cells per backend row.")
    parser.add_argument("--docker-run-n", type=int, default=15, help="Cells for the docker-run-per-call row.")
    parser.add_argument("--pool", type=int, default=2, help="Containers for the throughput row.")
    parser.add_argument("--image", default="codedance-sandbox:latest")
    parser.add_argument("--no-runsc", action="store_true")
    parser.add_argument("--json", action="store_true", help="Print the rows as JSON instead of a table.")
    args = parser.parse_args()

    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as folder:
        image_path = test_image(Path(folder))
        runc = SandboxConfig(backend="docker", docker=DockerSandboxConfig(image=args.image, pool_size=1))
        configs = [("docker backend (runc)", runc)]
        if not args.no_runsc and runsc_registered():
            runsc = runc.docker.model_copy(update={"runtime": "runsc"})
            configs.append(("docker backend (runsc)", runc.model_copy(update={"docker": runsc})))
        for cell_name, code in (("trivial", TRIVIAL), ("crop 1024²", CROP)):
            rows.append({"mechanism": "floor: exec in-process", "cell": cell_name, "samples": floor(code, image_path, args.n)})
            rows.append({"mechanism": "docker run per call", "cell": cell_name,
                         "samples": docker_run(code, image_path, args.docker_run_n, args.image)})
            for name, config in configs:
                samples, startup = asyncio.run(backend(code, image_path, args.n if "runc" in name else args.n // 2, config))
                rows.append({"mechanism": name, "cell": cell_name, "samples": samples, "startup_s": startup})
        rate = asyncio.run(throughput(runc.model_copy(update={"docker": runc.docker.model_copy(update={"pool_size": args.pool})})))

    baseline = {row["cell"]: percentiles(row["samples"])[0] for row in rows if row["mechanism"] == "docker run per call"}
    for row in rows:
        row["p50_ms"], row["p95_ms"] = percentiles(row.pop("samples"))
        row["x_faster_than_docker_run"] = baseline[row["cell"]] / row["p50_ms"]
    if args.json:
        print(json.dumps({"rows": rows, "throughput_cells_per_s_8_sessions": rate}, indent=2))
        return
    table = Table(title="Docker sandbox backend (p50/p95 per cell, ms; ratio = docker run p50 / p50)")
    for column in ("mechanism", "cell", "p50 ms", "p95 ms", "× vs docker run", "start-up s"):
        table.add_column(column)
    for row in rows:
        startup = f"{row['startup_s']:.2f}" if "startup_s" in row else ""
        table.add_row(row["mechanism"], row["cell"], f"{row['p50_ms']:.2f}", f"{row['p95_ms']:.2f}",
                      f"{row['x_faster_than_docker_run']:.1f}", startup)
    console = Console(width=150)
    console.print(table)
    console.print(f"throughput: {rate:.0f} trivial cells/s with 8 concurrent sessions over {args.pool} runc containers")


if __name__ == "__main__":
    main()
