"""What makes a session child safe to hand to model code: warm imports, the seccomp filter, rlimits, its own uid.

The worker pre-imports and builds the filter once (`preload`, `build_seccomp_filter`); every forked session
child then calls `lock_down` before it runs a single cell. Order matters: rlimits and the uid drop come
before anything the cell controls, the filter last (it would block the set-up itself).
"""

from __future__ import annotations

import ctypes
import errno
import io
import math
import os
import resource
import signal
import socket
import sys
from typing import Any

from .capture import FIGURE_DPI

STDLIB_PRELOAD = (
    "collections", "itertools", "functools", "math", "cmath", "statistics", "random", "re", "json", "csv", "string",
    "textwrap", "heapq", "bisect", "copy", "pprint", "dataclasses", "typing", "enum", "glob", "pathlib", "tempfile",
    "subprocess", "zlib", "gzip", "colorsys", "operator", "fractions", "decimal", "datetime", "time", "calendar",
    "uuid", "urllib.request", "urllib.parse", "html", "difflib", "unicodedata", "contextlib", "numbers", "queue",
    "threading", "concurrent.futures", "multiprocessing", "warnings", "logging", "argparse", "pickle", "shlex",
)
CLONE_NS_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000, 0x00000080)
BLOCKED_SYSCALLS = (
    "ptrace", "process_vm_readv", "process_vm_writev", "mount", "umount2", "unshare", "setns", "bpf", "keyctl",
    "add_key", "request_key", "perf_event_open", "chroot", "pivot_root", "setsid", "setpgid", "kexec_load",
    "init_module", "finit_module", "delete_module", "reboot", "swapon", "swapoff", "userfaultfd", "open_by_handle_at",
    "name_to_handle_at", "fsopen", "fsmount", "move_mount", "open_tree", "io_uring_setup", "personality", "acct",
)


class CellCpuLimit(Exception):
    """Raised inside a cell when it used up its CPU-time budget (SIGXCPU)."""


# Tracebacks name an exception's module unless it is __main__ or builtins; the model sees "CellCpuLimit: ...",
# as it did when the worker was one script, never the worker's package path.
CellCpuLimit.__module__ = "__main__"


def _on_sigxcpu(signum: int, frame: Any) -> None:
    raise CellCpuLimit("the cell used up its CPU-time limit")


def preload() -> list[str]:
    """Import everything a cell commonly needs once, so forked sessions start warm (and after setuid)."""
    warnings = []
    import encodings.idna  # noqa: F401  lazily imported codecs fail after dropping root (0700 homes)
    import encodings.latin_1, encodings.ascii, encodings.utf_16, encodings.utf_32  # noqa: F401,E401
    for name in STDLIB_PRELOAD:  # stdlib under a 0700 home (pyenv as root) is unreadable after setuid
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - trimmed interpreters
            pass
    import numpy  # noqa: F401
    import PIL.Image
    import PIL.ImageChops, PIL.ImageDraw, PIL.ImageEnhance, PIL.ImageFilter, PIL.ImageFont, PIL.ImageOps  # noqa: F401,E401
    import PIL.ImageStat  # noqa: F401

    PIL.Image.init()
    try:
        import cv2

        cv2.setNumThreads(1)
    except Exception as exc:  # noqa: BLE001 - cv2 is optional (e.g. a minimal container)
        warnings.append(f"cv2 unavailable: {exc}")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.font_manager
        import matplotlib.pyplot as plt

        figure, axes = plt.subplots()  # render once here so text/font caches are warm in every fork
        axes.plot([0, 1], [0, 1])
        axes.set_title("warm-up")
        figure.savefig(io.BytesIO(), format="png", dpi=FIGURE_DPI)
        plt.close("all")
    except Exception as exc:  # noqa: BLE001
        warnings.append(f"matplotlib unavailable: {exc}")
    for optional in ("scipy.ndimage", "skimage"):
        try:
            __import__(optional)
        except Exception:  # noqa: BLE001 - optional extras
            pass
    return warnings


def build_seccomp_filter() -> tuple[Any | None, str | None]:
    """Filter built once in the worker and loaded in each session child: no network, no namespace tricks."""
    try:
        import seccomp as sc  # Debian's python3-seccomp
    except ImportError:
        try:
            import pyseccomp as sc
        except (ImportError, RuntimeError) as exc:
            return None, f"seccomp unavailable ({exc}); network sockets are not blocked by a filter"
    try:
        flt = sc.SyscallFilter(defaction=sc.ALLOW)
        flt.add_rule(sc.ERRNO(errno.EACCES), "socket", sc.Arg(0, sc.NE, socket.AF_UNIX))
        for name in BLOCKED_SYSCALLS:
            try:
                flt.add_rule(sc.ERRNO(errno.EPERM), name)
            except Exception:  # noqa: BLE001 - syscall unknown on this arch / libseccomp
                pass
        for flag in CLONE_NS_FLAGS:
            flt.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
        try:
            flt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")  # libc falls back to clone(), whose flags we can check
        except Exception:  # noqa: BLE001
            pass
        return flt, None
    except Exception as exc:  # noqa: BLE001
        return None, f"seccomp filter could not be built ({exc})"


def world_traversable(path: str) -> bool:
    """Whether an unprivileged uid can reach `path` (every ancestor o+x)."""
    path = os.path.abspath(path)
    while True:
        try:
            if not os.stat(path).st_mode & 0o001:
                return False
        except OSError:
            return False
        parent = os.path.dirname(path)
        if parent == path:
            return True
        path = parent


def _set_pdeathsig() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001
        pass


def lock_down(ctrl: socket.socket, out_w: int, err_w: int, workdir: str, uid: int | None, limits: dict[str, Any],
              seccomp_filter: Any) -> int:
    """In a fresh session child: own process group, fds 0-3 only, rlimits, the session uid, seccomp.

    Returns the control fd (3). Any failure propagates: the caller exits the child rather than run unconfined.
    """
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    ctrl_fd = os.dup2(ctrl.detach(), 3, inheritable=False)  # detach: no socket object may close fd 3 later
    os.closerange(4, 65536)
    mib = 1 << 20
    cpu = int(limits["cpu_s"])
    for which, value in (
        (resource.RLIMIT_AS, int(limits["memory_mb"]) * mib),
        (resource.RLIMIT_FSIZE, int(limits["file_size_mb"]) * mib),
        (resource.RLIMIT_NOFILE, int(limits["max_open_files"])),
        (resource.RLIMIT_NPROC, int(limits["max_processes"])),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_CPU, cpu * 10 + 5),  # session total; each cell gets `cpu_s` more as the soft limit
    ):
        resource.setrlimit(which, (value, value))
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    _set_pdeathsig()
    os.chdir(workdir)  # after setuid: the directory belongs to the session uid, mode 0700
    os.umask(0o077)
    os.environ.update(HOME=workdir, TMPDIR=os.path.join(workdir, ".tmp"), MPLCONFIGDIR=os.path.join(workdir, ".tmp"))
    os.makedirs(os.environ["TMPDIR"], exist_ok=True)
    signal.signal(signal.SIGXCPU, _on_sigxcpu)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over-size writes raise OSError(EFBIG) instead of killing
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", closefd=False), encoding="utf-8", errors="backslashreplace")
    sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", closefd=False), encoding="utf-8", errors="backslashreplace")
    sys.__stdout__, sys.__stderr__ = sys.stdout, sys.stderr
    if seccomp_filter is not None:
        seccomp_filter.load()
    return ctrl_fd


def arm_cpu_limit(cpu_s: int) -> None:
    """Give the coming cell `cpu_s` more seconds of CPU (soft RLIMIT_CPU: SIGXCPU raises CellCpuLimit).

    The limit is in whole seconds of the process's total: rounding the usage so far up, not down, is what gives the
    cell at least `cpu_s` (down, a session at 2.9 s left a 1 s cell 0.1 s, and the cell after a CPU-limited one
    could be stopped before it printed anything).
    """
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    budget = math.ceil(usage.ru_utime + usage.ru_stime) + int(cpu_s)
    try:
        resource.setrlimit(resource.RLIMIT_CPU, (min(budget, hard) if hard != resource.RLIM_INFINITY else budget, hard))
    except (ValueError, OSError):
        pass


def disarm_cpu_limit() -> None:
    """Between cells only the session's hard CPU limit applies (output collection must not hit SIGXCPU)."""
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    try:
        resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))
    except (ValueError, OSError):
        pass
