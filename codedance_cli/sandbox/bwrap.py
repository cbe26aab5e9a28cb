"""The bubblewrap boundary around a local worker: what the worker may see, and how it is started.

Allow-list, not deny-list: the worker sees /usr (read-only), a few files of /etc, the Python
interpreter and venv (read-only), its own worker package folder, a private /tmp and /dev, and one writable
directory for its sessions. The project checkout, /root, /home and the host's /tmp are absent.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from codedance_cli.sandbox.protocol import WORKER_DIR

log = logging.getLogger(__name__)

SANDBOX_WORKER = "/opt/codedance/worker"  # the worker package folder, run as `python -I <folder>`
SANDBOX_SESSIONS = "/sessions"
SANDBOX_MPLCONFIG = "/opt/codedance/matplotlib"
ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/fonts", "/etc/localtime", "/etc/alternatives")
# Session children setuid to these; the worker keeps only what it needs to create, drop to and kill them.
WORKER_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_CHOWN")
TMP_BYTES, SHM_BYTES, SESSIONS_BYTES = 1 << 30, 256 << 20, 4 << 30


@dataclass(frozen=True)
class WorkerLaunch:
    """Everything needed to start one worker process."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    isolated: bool  # True when bubblewrap wraps the worker


def worker_env(mpl_config_dir: str) -> dict[str, str]:
    """The worker's whole environment: nothing of the orchestrator's (API keys, tokens) leaks in."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": "/tmp",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": mpl_config_dir,
        "XDG_CACHE_HOME": "/tmp/.cache",
    }


@functools.lru_cache(maxsize=1)
def bwrap_usable() -> str | None:
    """Path of a working bwrap, or None (missing, or namespaces are not permitted here)."""
    path = shutil.which("bwrap")
    if path is None:
        return None
    probe = [path, "--unshare-net", "--unshare-pid", "--die-with-parent", "--ro-bind", "/", "/", "--proc", "/proc", "true"]
    try:
        result = subprocess.run(probe, capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        log.warning("bubblewrap is installed but cannot create namespaces here: %s", result.stderr.decode(errors="replace").strip())
        return None
    return path


def python_roots(python: str) -> list[str]:
    """Directories the interpreter needs: the venv and the base installation it points to."""
    if python == sys.executable:
        roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    else:
        out = subprocess.run(
            [python, "-c", "import sys; print(sys.prefix); print(sys.base_prefix); print(sys.exec_prefix)"],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout
        roots = set(out.split())
    roots.add(str(Path(python).resolve().parent.parent))
    return sorted(root for root in roots if root and not root.startswith("/usr/"))


def _parents(path: str) -> list[str]:
    parts = Path(path).parts[1:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def bwrap_argv(bwrap: str, python: str, worker_dir: str, mpl_config_dir: str) -> list[str]:
    """bwrap command line for one worker (see module docstring for what is visible)."""
    argv = [bwrap, "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    argv += ["--hostname", "sandbox", "--die-with-parent", "--new-session", "--clearenv"]
    if os.geteuid() == 0:
        # As root, bwrap would map a single uid into a user namespace, which rules out per-session uids;
        # we keep the host uid space and drop every capability the worker does not need instead.
        argv += ["--cap-drop", "ALL"]
        for cap in WORKER_CAPS:
            argv += ["--cap-add", cap]
    else:
        argv += ["--unshare-user"]
    argv += ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = Path("/") / name
        if host.is_symlink():
            argv += ["--symlink", os.readlink(host), str(host)]
        elif host.is_dir():
            argv += ["--ro-bind", str(host), str(host)]
    argv += ["--perms", "0755", "--dir", "/etc"]
    for path in ETC_FILES:
        argv += ["--ro-bind-try", path, path]
    # sized tmpfs: a session filling /tmp hits ENOSPC instead of eating the host's memory
    argv += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(TMP_BYTES), "--tmpfs", "/tmp",
             "--perms", "1777", "--size", str(SHM_BYTES), "--tmpfs", "/dev/shm"]
    made = {"/", "/usr", "/tmp", "/dev", "/proc", "/etc", "/opt"}
    roots = python_roots(python)
    for root in roots:
        for parent in _parents(root):
            if parent not in made and not any(parent == r or parent.startswith(r + "/") for r in roots if r != root):
                argv += ["--perms", "0755", "--dir", parent]
                made.add(parent)
        argv += ["--ro-bind", root, root]
    argv += ["--perms", "0755", "--dir", "/opt", "--perms", "0755", "--dir", "/opt/codedance"]
    argv += ["--ro-bind", worker_dir, SANDBOX_WORKER]
    argv += ["--bind", mpl_config_dir, SANDBOX_MPLCONFIG]
    # the session area is the worker's own tmpfs: it vanishes with the sandbox even if nobody cleans up
    argv += ["--perms", "0711", "--size", str(SESSIONS_BYTES), "--tmpfs", SANDBOX_SESSIONS, "--chdir", SANDBOX_SESSIONS]
    for key, value in worker_env(SANDBOX_MPLCONFIG).items():
        argv += ["--setenv", key, value]
    return argv + ["--", python, "-I", SANDBOX_WORKER, "--session-root", SANDBOX_SESSIONS]


def launch_plan(
    python: str, session_dir: str | None, mpl_config_dir: str, uid_base: int, use_bwrap: bool, use_seccomp: bool
) -> WorkerLaunch:
    """How to start a worker here: inside bwrap when possible, else a plain subprocess (warned once).

    `session_dir` (a host directory) is used only without bwrap; inside bwrap sessions live on a private tmpfs.
    """
    worker_dir = str(WORKER_DIR)
    extra = ["--uid-base", str(uid_base), "--uid-count", "1000"] + ([] if use_seccomp else ["--no-seccomp"])
    bwrap = bwrap_usable() if use_bwrap else None
    if bwrap is not None:
        argv = bwrap_argv(bwrap, python, worker_dir, mpl_config_dir) + extra
        return WorkerLaunch(argv=argv, env={}, cwd="/", isolated=True)
    if use_bwrap:
        _warn_once("bubblewrap is unavailable: local workers run without filesystem/network/pid namespaces "
                   "(rlimits, seccomp and per-session uids still apply); install it with `apt-get install bubblewrap`")
    session_dir = session_dir or tempfile.mkdtemp(prefix="codedance-sbx-")
    argv = [python, "-I", worker_dir, "--session-root", session_dir, *extra]
    return WorkerLaunch(argv=argv, env=worker_env(mpl_config_dir), cwd=session_dir, isolated=False)


@functools.lru_cache(maxsize=None)
def _warn_once(message: str) -> None:
    log.warning(message)
