"""Building the sandbox image: offline (mmdebstrap/debootstrap rootfs + `docker import`) or from the shipped Dockerfile.

Both paths label the image with a sha256 of the worker folder (`sandbox/worker/`) it contains, so a changed
worker is rebuilt and an unchanged one costs nothing. The offline path is the one that works without a registry (this project's CI);
its script also caches the Debian base layer separately, so a new worker rebuilds in about a second.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from codedance_cli.errors import BadInput, EngineFailed
from codedance_cli.sandbox.docker_container import WORKER_LABEL, worker_sha256
from codedance_cli.sandbox.protocol import worker_files

Method = Literal["auto", "rootfs", "dockerfile"]
CHECKOUT = Path(__file__).resolve().parents[2]
ROOTFS_SCRIPT = CHECKOUT / "scripts" / "build_sandbox_rootfs.sh"
START_DOCKERD = CHECKOUT / "scripts" / "start_dockerd.sh"
DOCKERFILE = CHECKOUT / "docker" / "sandbox" / "Dockerfile"
DOCKERFILE_LABEL = "org.codedance.dockerfile-sha256"


@dataclass
class BuildResult:
    """What `build_image` did, for the CLI's one line (or --json)."""

    image: str
    method: str
    built: bool
    seconds: float
    size_mb: float
    worker_sha256: str


def ensure_engine() -> None:
    """Start dockerd (no bridge, no iptables) when none answers; a no-op when one does."""
    if not START_DOCKERD.is_file():
        return
    result = subprocess.run(["bash", str(START_DOCKERD)], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise EngineFailed(f"docker engine: {' '.join(result.stderr.split()) or 'start_dockerd.sh failed'}")


def image_labels(image: str) -> dict[str, str] | None:
    """Labels of a local image, or None when it does not exist."""
    result = subprocess.run(["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", image],
                            capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        return None
    import json

    return json.loads(result.stdout.strip() or "null") or {}


def image_size_mb(image: str) -> float:
    result = subprocess.run(["docker", "image", "inspect", "--format", "{{.Size}}", image], capture_output=True, text=True, timeout=60)
    return int(result.stdout.strip() or 0) / 1e6 if result.returncode == 0 else 0.0


def choose_method(method: Method) -> Literal["rootfs", "dockerfile"]:
    """auto: the offline path where it can run (root + mmdebstrap/debootstrap + a checkout), else the Dockerfile."""
    if method != "auto":
        return method
    import os

    if os.geteuid() == 0 and (shutil.which("mmdebstrap") or shutil.which("debootstrap")) and ROOTFS_SCRIPT.is_file():
        return "rootfs"
    return "dockerfile"


def build_image(image: str = "codedance-sandbox:latest", method: Method = "auto", force: bool = False,
                on_line: Callable[[str], None] | None = None, python_image: str | None = None) -> BuildResult:
    """Build (or keep) IMAGE with the current worker; `on_line` receives the build's log lines.

    `python_image` replaces the Dockerfile's base (python:3.11-slim-bookworm), e.g. a mirror of it.
    """
    if shutil.which("docker") is None:
        raise EngineFailed("the docker CLI is not installed (apt-get install docker.io, or scripts/system_deps.sh)")
    ensure_engine()
    chosen = choose_method(method)
    started = time.monotonic()
    before = image_labels(image)
    if force and before is not None:
        subprocess.run(["docker", "image", "rm", image], capture_output=True, timeout=120)
        before = None
    if chosen == "rootfs":
        _run_logged(["bash", str(_require(ROOTFS_SCRIPT)), image], on_line)
    else:
        _build_dockerfile(image, force, on_line, python_image)
    after = image_labels(image) or {}
    return BuildResult(
        image=image, method=chosen, built=before != after or force, seconds=round(time.monotonic() - started, 1),
        size_mb=round(image_size_mb(image), 1), worker_sha256=after.get(WORKER_LABEL, ""),
    )


def _build_dockerfile(image: str, force: bool, on_line: Callable[[str], None] | None, python_image: str | None) -> None:
    """`docker build` of docker/sandbox/Dockerfile with a small context: the Dockerfile and the worker folder.

    `--network host` because an engine started with `--bridge=none` (ours) has no default network for RUN steps.
    """
    import hashlib

    dockerfile_hash = hashlib.sha256(_require(DOCKERFILE).read_bytes()).hexdigest()
    labels = image_labels(image) or {}
    if not force and labels.get(WORKER_LABEL) == worker_sha256() and labels.get(DOCKERFILE_LABEL) == dockerfile_hash:
        if on_line:
            on_line(f"{image} is up to date")
        return
    with tempfile.TemporaryDirectory(prefix="codedance-sandbox-build-") as context:
        shutil.copy(DOCKERFILE, Path(context) / "Dockerfile")
        _stage_worker(Path(context) / "worker")
        argv = ["docker", "build", "--force-rm", "--network", "host", "-t", image, "--label", f"{WORKER_LABEL}={worker_sha256()}",
                "--label", f"{DOCKERFILE_LABEL}={dockerfile_hash}"]
        if python_image:
            argv += ["--build-arg", f"PYTHON_IMAGE={python_image}"]
        _run_logged([*argv, context], on_line)


def _stage_worker(folder: Path) -> None:
    """Copy exactly the hashed worker files (no host __pycache__), readable by session uids whatever the umask."""
    for name, path in worker_files():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        target.chmod(0o644)
    for sub in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
        sub.chmod(0o755)


def _require(path: Path) -> Path:
    if not path.is_file():
        raise BadInput(f"{path}: not found; building the sandbox image needs a source checkout of CodeDance")
    return path


def _run_logged(argv: list[str], on_line: Callable[[str], None] | None) -> None:
    """Run a build step, streaming its output; a failure ends with the last lines in one message."""
    tail: list[str] = []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=CHECKOUT) as process:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip()
            tail = (tail + [line])[-5:]
            if on_line:
                on_line(line)
        code = process.wait()
    if code != 0:
        raise EngineFailed(f"{Path(argv[1]).name if argv[0] == 'bash' else 'docker build'} failed (exit {code}): {' | '.join(tail)}")
