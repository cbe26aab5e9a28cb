"""The sandbox worker package stands alone: it runs from a bare copy of its folder, imports nothing of
codedance_cli, keeps its own frames out of tracebacks, and the image label hashes exactly its files
(the same way in Python and in scripts/build_sandbox_rootfs.sh)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from codedance_cli.sandbox import protocol
from codedance_cli.sandbox.docker_container import worker_sha256
from codedance_cli.sandbox.protocol import WORKER_DIR, worker_files
from codedance_cli.sandbox.worker.framing import encode_frame, read_frame_blocking

# What the worker may import besides the standard library and its own modules (all but PIL optional).
ALLOWED_THIRD_PARTY = {"numpy", "PIL", "cv2", "matplotlib", "seccomp", "pyseccomp"}


def test_worker_imports_only_the_stdlib_its_own_modules_and_the_image_libraries() -> None:
    allowed = set(sys.stdlib_module_names) | ALLOWED_THIRD_PARTY
    for module in WORKER_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            outside = [name for name in names if name.split(".")[0] not in allowed | {"__future__"}]
            assert not outside, f"{module.name} imports {outside}"


def test_module_sizes_stay_small() -> None:
    for module in WORKER_DIR.glob("*.py"):
        assert len(module.read_text().splitlines()) < 450, module.name


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory):
    """The worker started from a copy of its folder under an unrelated name (as bwrap and the image see it)."""
    root = tmp_path_factory.mktemp("standalone")
    folder = root / "elsewhere"
    for name, path in worker_files():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, folder / name)
    process = subprocess.Popen(
        [sys.executable, "-I", str(folder), "--no-setuid", "--session-root", str(root)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=root,
    )
    ids = iter(range(1, 1000))

    def request(op: str, **fields: object) -> dict:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(encode_frame({"id": next(ids), "op": op, **fields}))
        process.stdin.flush()
        reply = read_frame_blocking(process.stdout.fileno())
        assert reply is not None, "the worker exited"
        return reply

    assert process.stdout is not None
    ready = read_frame_blocking(process.stdout.fileno())
    assert ready is not None and ready["op"] == "ready", ready
    assert request("open", session="s", images=[], limits={"cpu_s": 1})["ok"]
    yield folder, request
    request("shutdown")
    assert process.wait(timeout=30) == 0


def run(request, code: str) -> dict:
    reply = request("run", session="s", code=code, timeout_s=20)
    assert reply["ok"], reply
    return reply["observation"]


def test_standalone_folder_runs_cells_without_exposing_itself(worker) -> None:
    folder, request = worker
    seen = run(request, "import sys\nprint([p for p in sys.path if 'elsewhere' in p])\n1 + 1")
    assert seen["error"] is None and seen["stdout"] == "[]\n2\n", seen  # the folder is not on the session's sys.path
    image = run(request, "import numpy as np\nnp.zeros((64, 64, 3), np.uint8)")
    assert len(image["images"]) == 1


def test_worker_frames_are_dropped_from_tracebacks(worker) -> None:
    folder, request = worker
    # an error raised inside the worker's display hook (capture.py): the cell's frame stays, the worker's go
    hook = run(request, "import matplotlib.pyplot as plt\nfigure = plt.figure()\nfigure.savefig = None\ndisplay(figure)")
    assert hook["error_type"] == "TypeError" and 'File "<cell' in hook["error"], hook
    assert str(folder) not in hook["error"] and "sandbox_worker" not in hook["error"] and "capture" not in hook["error"]
    spin = run(request, "while True:\n    pass")
    assert spin["error_type"] == "CellCpuLimit", spin
    assert spin["error"].endswith("\nCellCpuLimit: the cell used up its CPU-time limit") and str(folder) not in spin["error"]


def test_image_label_hashes_every_worker_file_like_the_rootfs_script(repo_root: Path, tmp_path: Path, monkeypatch) -> None:
    copy = tmp_path / "worker"
    shutil.copytree(WORKER_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(protocol, "WORKER_DIR", copy)
    original = worker_sha256()
    script = (repo_root / "scripts" / "build_sandbox_rootfs.sh").read_text()
    hashing = [line for line in script.splitlines() if line.startswith(("sha256()", "worker_files()", "worker_hash="))]
    assert len(hashing) == 3
    shell = subprocess.run(["bash", "-c", "\n".join(["set -euo pipefail", 'worker="$1"', *hashing, 'echo "$worker_hash"']),
                            "hash", str(copy)], capture_output=True, text=True, check=True)
    assert shell.stdout.strip() == original

    (copy / "__pycache__").mkdir()
    (copy / "__pycache__" / "loop.cpython-311.pyc").write_bytes(b"cache")
    assert worker_sha256() == original  # caches are not the worker
    (copy / "helpers").mkdir()
    (copy / "helpers" / "extra.py").write_text("# a new module\n")
    assert worker_sha256() != original  # any file of the folder is
