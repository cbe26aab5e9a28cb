"""CodeDance sandbox warm worker: one process that hosts many isolated, stateful sessions.

Self-contained on purpose (stdlib + numpy/PIL/cv2/matplotlib/seccomp, all optional but PIL):
the local backend runs this file inside bubblewrap and the Docker backend runs the *same file*
as `python3 worker.py` inside a container, so it must not import codedance_cli or pydantic.
Protocol and layers are documented in docs/sandbox.md; the wire format is:

    frame = 4-byte big-endian length + UTF-8 JSON object

Requests (orchestrator -> worker, on stdin) carry an integer "id"; every reply echoes it:
    {"id", "op": "open", "session", "images": [base64...], "limits": {...}} -> {"id", "ok", "session"}
    {"id", "op": "run", "session", "code", "timeout_s"}                   -> {"id", "ok", "observation": {...}}
    {"id", "op": "close", "session"}                                      -> {"id", "ok"}
    {"id", "op": "ping"} -> {"id", "ok", "sessions"};  {"id", "op": "shutdown"} -> {"id", "ok"}, exit
The worker first sends {"op": "ready", "pid", "python", "layers": {...}, "warnings": [...]}.

Each session is a child forked from this pre-imported process: own process group, private
directory as cwd, rlimits, its own unprivileged uid when the worker is root, seccomp; the child
keeps the session's namespace across cells. A timeout or crash kills the child's process group
and the session restarts clean (variables lost, files in its directory kept).
"""

from __future__ import annotations

import ast
import base64
import builtins
import ctypes
import errno
import hashlib
import io
import json
import linecache
import os
import resource
import selectors
import shutil
import signal
import socket
import struct
import sys
import threading
import time
import traceback

WORKER_FILE = os.path.abspath(__file__)
MAX_FRAME = 512 << 20
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
DEFAULT_LIMITS = {
    "cpu_s": 15,
    "memory_mb": 2048,
    "file_size_mb": 64,
    "max_open_files": 256,
    "max_processes": 64,
    "max_output_chars": 8000,
    "max_images_per_cell": 8,
}
STDLIB_PRELOAD = (
    "collections", "itertools", "functools", "math", "cmath", "statistics", "random", "re", "json", "csv", "string",
    "textwrap", "heapq", "bisect", "copy", "pprint", "dataclasses", "typing", "enum", "glob", "pathlib", "tempfile",
    "subprocess", "zlib", "gzip", "colorsys", "operator", "fractions", "decimal", "datetime", "time", "calendar",
    "uuid", "urllib.request", "urllib.parse", "html", "difflib", "unicodedata", "contextlib", "numbers", "queue",
    "threading", "concurrent.futures", "multiprocessing", "warnings", "logging", "argparse", "pickle", "shlex",
)
# CodeDance conventions for images going back to the model (see codedance-facts.md, "Execution").
MIN_SIDE, UPSCALE_TO, MAX_ASPECT, FIGURE_DPI = 56, 112, 200, 150
MAX_SENT_PIXELS = 16 << 20  # larger images are downscaled before sending (the loop resizes far below this anyway)
CLONE_NS_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000, 0x00000080)
BLOCKED_SYSCALLS = (
    "ptrace", "process_vm_readv", "process_vm_writev", "mount", "umount2", "unshare", "setns", "bpf", "keyctl",
    "add_key", "request_key", "perf_event_open", "chroot", "pivot_root", "setsid", "setpgid", "kexec_load",
    "init_module", "finit_module", "delete_module", "reboot", "swapon", "swapoff", "userfaultfd", "open_by_handle_at",
    "name_to_handle_at", "fsopen", "fsmount", "move_mount", "open_tree", "io_uring_setup", "personality", "acct",
)


# ----------------------------------------------------------------------------------------------- framing


def encode_frame(message: dict) -> bytes:
    data = json.dumps(message, separators=(",", ":")).encode()
    return struct.pack(">I", len(data)) + data


class FrameBuffer:
    """Accumulates bytes from a non-blocking fd and yields complete JSON frames."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[dict]:
        self.buffer += data
        frames = []
        while len(self.buffer) >= 4:
            (size,) = struct.unpack(">I", self.buffer[:4])
            if size > MAX_FRAME:
                raise ValueError(f"frame of {size} bytes exceeds the limit")
            if len(self.buffer) < 4 + size:
                break
            frames.append(json.loads(bytes(self.buffer[4 : 4 + size])))
            del self.buffer[: 4 + size]
        return frames


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            selectors.select.select([], [fd], [], 1.0)
            continue
        view = view[written:]


def read_frame_blocking(fd: int) -> dict | None:
    header = _read_exact(fd, 4)
    if header is None:
        return None
    (size,) = struct.unpack(">I", header)
    body = _read_exact(fd, size)
    return None if body is None else json.loads(body)


def _read_exact(fd: int, size: int) -> bytes | None:
    chunks, remaining = [], size
    while remaining:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


# ----------------------------------------------------------------------------------------------- warm imports


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


def build_seccomp_filter() -> tuple[object | None, str | None]:
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


# ----------------------------------------------------------------------------------------------- session child


class CellCpuLimit(Exception):
    """Raised inside a cell when it used up its CPU-time budget (SIGXCPU)."""


def _on_sigxcpu(signum, frame):  # noqa: ANN001
    raise CellCpuLimit("the cell used up its CPU-time limit")


class SessionRuntime:
    """Lives in the forked session child: runs cells in a persistent namespace and collects their output."""

    def __init__(self, ctrl_fd: int, limits: dict) -> None:
        self.ctrl_fd = ctrl_fd
        self.limits = limits
        self.owner_pid = os.getpid()
        self.cell_index = 0
        self.captured: list = []
        self.notes: list[str] = []
        import numpy
        import PIL.Image

        self.np, self.Image = numpy, PIL.Image
        self.plt = sys.modules.get("matplotlib.pyplot")
        self.namespace: dict = {"__name__": "__main__", "__builtins__": builtins, "display": self.display}
        self.namespace.update(np=numpy, Image=PIL.Image)
        if self.plt is not None:
            self.namespace["plt"] = self.plt
        if "cv2" in sys.modules:
            self.namespace["cv2"] = sys.modules["cv2"]
        self._patch_display_hooks()

    # -- set-up

    def load_inputs(self, images: list[bytes]) -> None:
        """Write input images (converted to PNG here, inside the sandbox) and open them lazily."""
        opened = []
        for index, data in enumerate(images):
            name = "input_image.png" if index == 0 else f"input_image_{index + 1}.png"
            if not os.path.exists(name):
                if not data.startswith(b"\x89PNG\r\n\x1a\n"):
                    buffer = io.BytesIO()
                    self.Image.open(io.BytesIO(data)).save(buffer, format="PNG", compress_level=1)
                    data = buffer.getvalue()
                with open(name, "wb") as handle:
                    handle.write(data)
                if index == 0 and not os.path.lexists("input_image.jpg"):
                    os.symlink("input_image.png", "input_image.jpg")  # CodeDance's data calls it input_image.jpg
            opened.append(self.Image.open(name))  # lazy: pixels are decoded on first use
        self.namespace["input_images"] = opened
        self.namespace["input_image"] = opened[0] if opened else None
        self.namespace["input_image_path"] = "input_image.png" if opened else None
        self.input_names = {"input_image.png", "input_image.jpg"} | {f"input_image_{i + 1}.png" for i in range(len(opened))}

    def _patch_display_hooks(self) -> None:
        runtime = self
        self.Image.Image.show = lambda image, *args, **kwargs: runtime.captured.append(image.copy())
        if self.plt is not None:
            import matplotlib.figure

            def show(*args, **kwargs):  # noqa: ANN002,ANN003
                runtime.capture_open_figures()

            self.plt.show = show
            matplotlib.figure.Figure.show = lambda figure, *args, **kwargs: runtime.capture_figure(figure)
        cv2 = sys.modules.get("cv2")
        if cv2 is not None:  # headless OpenCV has no GUI: imshow shows the (BGR) array to the model instead
            cv2.imshow = lambda winname, mat: runtime.captured.append(runtime._array_to_image(self.np.asarray(mat)))
            cv2.waitKey = lambda *args, **kwargs: -1
            cv2.destroyAllWindows = lambda *args, **kwargs: None
            cv2.destroyWindow = lambda *args, **kwargs: None

    # -- image capture

    def display(self, *objects, **kwargs) -> None:  # noqa: ANN002,ANN003
        """`display(x)`: images are shown to the model, anything else is printed."""
        for obj in objects:
            if not self.capture_value(obj, explicit=True):
                print(repr(obj))

    def capture_value(self, value, explicit: bool = False) -> bool:  # noqa: ANN001
        if isinstance(value, self.Image.Image):
            self.captured.append(value.copy())
            return True
        if self.plt is not None:
            import matplotlib.figure

            if isinstance(value, matplotlib.figure.Figure):
                self.capture_figure(value)
                return True
            if hasattr(value, "figure") and isinstance(getattr(value, "figure", None), matplotlib.figure.Figure) and explicit:
                self.capture_figure(value.figure)
                return True
        if isinstance(value, self.np.ndarray) and self._image_like(value, explicit):
            self.captured.append(self._array_to_image(value))
            return True
        return False

    def _image_like(self, array, explicit: bool) -> bool:  # noqa: ANN001
        if array.dtype.kind not in "biuf" or array.size == 0:
            return False
        if array.ndim == 3 and array.shape[2] in (3, 4):
            return True
        if array.ndim == 3 and array.shape[2] == 1:
            return explicit or min(array.shape[:2]) >= 16
        if array.ndim == 2:
            return explicit or (array.dtype.kind in "bu" and min(array.shape) >= 16)
        return False

    def _array_to_image(self, array):  # noqa: ANN001
        np = self.np
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        if array.dtype.kind == "f":
            scale = 255.0 if float(np.nanmax(array)) <= 1.0 else 1.0
            array = np.nan_to_num(array * scale)
        array = np.clip(array, 0, 255).astype(np.uint8)
        if array.ndim == 3:  # OpenCV convention: 3/4-channel arrays are BGR(A)
            array = array[:, :, [2, 1, 0, 3][: array.shape[2]]]
        return self.Image.fromarray(np.ascontiguousarray(array))

    def capture_figure(self, figure) -> None:  # noqa: ANN001
        buffer = io.BytesIO()
        try:
            figure.savefig(buffer, format="png", dpi=FIGURE_DPI, bbox_inches="tight")
            self.add_encoded(buffer.getvalue())
        finally:
            self.plt.close(figure)

    def capture_open_figures(self) -> None:
        if self.plt is None:
            return
        for number in self.plt.get_fignums():
            self.capture_figure(self.plt.figure(number))

    def snapshot_files(self) -> dict[str, tuple[int, int]]:
        found: dict[str, tuple[int, int]] = {}
        for root, dirs, files in os.walk("."):
            dirs[:] = [d for d in dirs if not d.startswith(".")][:50]
            for name in files:
                if name.lower().endswith(IMAGE_SUFFIXES):
                    path = os.path.join(root, name)[2:]
                    try:
                        stat = os.stat(path)
                    except OSError:
                        continue
                    found[path] = (stat.st_mtime_ns, stat.st_size)
            if len(found) > 500:
                break
        return found

    def collect_saved_files(self, before: dict[str, tuple[int, int]]) -> None:
        limit = int(self.limits["max_images_per_cell"])
        for path, signature in sorted(self.snapshot_files().items()):
            if before.get(path) == signature or (path in self.input_names and path not in before):
                continue
            if len(self.captured) > limit:  # enough to fill the cell's quota (and say some were left out)
                self.notes.append(f"more image files were written than the {limit} images a cell returns; the rest are not read")
                break
            try:
                with open(path, "rb") as handle:
                    self.add_encoded(handle.read())
            except Exception as exc:  # noqa: BLE001 - a half-written or non-image file
                self.notes.append(f"saved file {path} could not be read as an image: {type(exc).__name__}")

    def add_encoded(self, data: bytes) -> None:
        """Encoded image bytes: a PNG that already meets the conventions is passed on as is (no decode/encode)."""
        image = self.Image.open(io.BytesIO(data))
        width, height = image.size
        as_is = (
            image.format == "PNG" and image.mode in ("RGB", "RGBA", "L", "LA") and min(width, height) >= MIN_SIDE
            and max(width, height) <= MAX_ASPECT * min(width, height) and width * height <= MAX_SENT_PIXELS
        )
        if as_is:
            image.verify()  # chunk CRCs, without decoding pixels
            self.captured.append(data)
        else:
            image.load()
            self.captured.append(image)

    def encode_captured(self) -> list[str]:
        encoded, seen = [], set()
        limit = int(self.limits["max_images_per_cell"])
        size_counts: dict = {}
        for image in self.captured:
            size_counts[self._size_of(image)] = size_counts.get(self._size_of(image), 0) + 1
        for image in self.captured:
            try:
                data = self._finalize_image(image)
                # same pixels shown twice (saved and displayed): compare pixels only when sizes collide
                digest = self._pixel_digest(data) if size_counts[self._size_of(image)] > 1 else hashlib.sha1(data).digest()
            except Exception as exc:  # noqa: BLE001
                self.notes.append(f"an image could not be encoded: {type(exc).__name__}: {exc}")
                continue
            if data is None or digest in seen:
                continue
            seen.add(digest)
            if len(encoded) >= limit:
                self.notes.append(f"only the first {limit} images of this cell are kept")
                break
            encoded.append(base64.b64encode(data).decode())
        self.captured = []
        return encoded

    def _size_of(self, image) -> tuple[int, int]:  # noqa: ANN001
        return self.Image.open(io.BytesIO(image)).size if isinstance(image, bytes) else image.size

    def _pixel_digest(self, data: bytes | None) -> bytes:
        if data is None:
            return b""
        image = self.Image.open(io.BytesIO(data))
        return hashlib.sha1(f"{image.mode}{image.size}".encode() + image.tobytes()).digest()

    def _finalize_image(self, image) -> bytes | None:  # noqa: ANN001
        if isinstance(image, bytes):
            return image
        width, height = image.size
        if width * height > (self.Image.MAX_IMAGE_PIXELS or 1 << 62):
            self.notes.append(f"dropped a {width}x{height} image: too many pixels")
            return None
        if max(width, height) / max(1, min(width, height)) > MAX_ASPECT:
            self.notes.append(f"dropped a {width}x{height} image: aspect ratio above {MAX_ASPECT}")
            return None
        if image.mode not in ("RGB", "RGBA", "L", "LA"):
            has_alpha = "A" in image.mode or "transparency" in image.info
            image = image.convert("RGBA" if has_alpha else "RGB")
        if width * height > MAX_SENT_PIXELS:
            scale = (MAX_SENT_PIXELS / (width * height)) ** 0.5
            image = image.resize((max(1, int(width * scale)), max(1, int(height * scale))), self.Image.BILINEAR)
            self.notes.append(f"a {width}x{height} image was downscaled to {image.size[0]}x{image.size[1]}")
        elif min(width, height) < MIN_SIDE:
            scale = UPSCALE_TO / max(1, min(width, height))
            image = image.resize((max(1, round(width * scale)), max(1, round(height * scale))), self.Image.BICUBIC)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue()

    # -- cells

    def run_cell(self, code: str, cell_index: int) -> dict:
        self.cell_index = cell_index or self.cell_index + 1
        filename = f"<cell {self.cell_index}>"
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        result = {"error_type": None, "error": None}
        before = self._safe(self.snapshot_files, {})
        self._arm_cpu_limit()
        try:
            tree = ast.parse(code, filename, "exec")
            last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
            exec(compile(tree, filename, "exec"), self.namespace)  # noqa: S102 - this is the sandbox
            if last is not None:
                value = eval(compile(ast.Expression(last.value), filename, "eval"), self.namespace)  # noqa: S307
                if value is not None and not self.capture_value(value):
                    print(repr(value))
        except SystemExit as exc:
            if exc.code not in (None, 0):
                result = {"error_type": "SystemExit", "error": f"SystemExit: {exc.code}"}
        except BaseException as exc:  # noqa: BLE001 - everything the code raises becomes the observation
            result = {"error_type": type(exc).__name__, "error": clean_traceback(exc)}
        finally:
            if os.getpid() != self.owner_pid:  # a process the cell forked must never return into the runtime
                self._flush_streams()
                os._exit(0 if result["error_type"] is None else 1)
            self._disarm_cpu_limit()
        self._safe(self.capture_open_figures, None)
        self._safe(lambda: self.collect_saved_files(before), None)
        result["images"] = self._safe(self.encode_captured, [])
        self._flush_streams()
        result["notes"], self.notes = self.notes, []
        return result

    def _safe(self, function, default):  # noqa: ANN001
        try:
            return function()
        except BaseException as exc:  # noqa: BLE001 - e.g. fd exhaustion or MemoryError left by the cell
            self.notes.append(f"output collection failed: {type(exc).__name__}: {exc}")
            return default

    def _arm_cpu_limit(self) -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
        budget = int(usage.ru_utime + usage.ru_stime) + int(self.limits["cpu_s"])
        try:
            resource.setrlimit(resource.RLIMIT_CPU, (min(budget, hard) if hard != resource.RLIM_INFINITY else budget, hard))
        except (ValueError, OSError):
            pass

    def _disarm_cpu_limit(self) -> None:
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        try:
            resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))
        except (ValueError, OSError):
            pass

    def _flush_streams(self) -> None:
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - the cell may have replaced or closed them
                pass
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__

    def serve(self) -> None:
        while True:
            request = read_frame_blocking(self.ctrl_fd)
            if request is None:
                os._exit(0)
            reply = self.run_cell(request["code"], int(request.get("cell") or 0))
            try:
                data = encode_frame(reply)
            except (TypeError, ValueError) as exc:
                data = encode_frame({"error_type": "SandboxError", "error": str(exc), "images": [], "notes": []})
            write_all(self.ctrl_fd, data)


def clean_traceback(exc: BaseException) -> str:
    """The traceback as the model should see it: cell and library frames only, never the worker's."""
    summary = traceback.TracebackException.from_exception(exc)
    _drop_worker_frames(summary, set())
    return "".join(summary.format()).rstrip()


def _drop_worker_frames(summary: traceback.TracebackException, seen: set[int]) -> None:
    if id(summary) in seen:
        return
    seen.add(id(summary))
    summary.stack = traceback.StackSummary.from_list([f for f in summary.stack if f.filename != WORKER_FILE])
    for chained in (summary.__cause__, summary.__context__):
        if chained is not None:
            _drop_worker_frames(chained, seen)


def _set_pdeathsig() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001
        pass


def session_child_main(ctrl: socket.socket, out_w: int, err_w: int, workdir: str, uid: int | None, limits: dict,
                       images: list[bytes], seccomp_filter) -> None:  # noqa: ANN001
    """Runs in the forked child: lock the process down, then serve cells until the worker closes the socket."""
    try:
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
        runtime = SessionRuntime(ctrl_fd, limits)
        try:
            runtime.load_inputs(images)  # already in this fork's memory: no transfer needed
        except Exception as exc:  # noqa: BLE001
            write_all(ctrl_fd, encode_frame({"ready": False, "error": f"input image unreadable: {type(exc).__name__}: {exc}"}))
            os._exit(1)
        write_all(ctrl_fd, encode_frame({"ready": True}))
        runtime.serve()
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
    finally:
        os._exit(70)


# ----------------------------------------------------------------------------------------------- worker


class CappedOutput:
    """Keeps the first `max_chars` characters of a stream and counts the rest (always drained)."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.data = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.max_chars * 4 + 4 - len(self.data)
        if room > 0:
            self.data += chunk[:room]

    def take(self) -> tuple[str, bool]:
        text = self.data.decode("utf-8", "replace")
        truncated = self.total > len(self.data) or len(text) > self.max_chars
        if truncated:
            text = text[: self.max_chars] + (
                f"\n[... output truncated: {self.total} bytes in total, only the first {self.max_chars} characters are shown ...]"
            )
        self.data, self.total = bytearray(), 0
        return text, truncated


class Session:
    """The worker's view of one session: its child process, pipes and the cell in flight."""

    def __init__(self, sid: str, uid: int | None, workdir: str, images: list[bytes], limits: dict) -> None:
        self.sid, self.uid, self.workdir, self.images, self.limits = sid, uid, workdir, images, limits
        self.pid = 0
        self.pidfd = -1
        self.ctrl: socket.socket | None = None
        self.pipes: dict[int, CappedOutput] = {}
        self.frames = FrameBuffer()
        self.phase = "starting"  # starting -> idle <-> busy
        self.open_request: int | None = None
        self.queued_run: dict | None = None
        self.run_request: dict | None = None
        self.started = 0.0
        self.deadline = float("inf")
        self.stdout = CappedOutput(int(limits["max_output_chars"]))
        self.stderr = CappedOutput(int(limits["max_output_chars"]))
        self.notes: list[str] = []
        self.cells = 0
        self.failures = 0  # consecutive deaths before `ready`; a session that cannot start is marked broken


class Worker:
    """Single-threaded event loop multiplexing sessions; never runs model code itself."""

    def __init__(self, proto_in: int, proto_out: int, session_root: str, uid_base: int, uid_count: int, use_setuid: bool, seccomp_filter) -> None:  # noqa: ANN001
        self.proto_in, self.proto_out = proto_in, proto_out
        self.session_root = session_root
        self.owns_session_root = False  # set by main() when it made a temp dir
        self.uids = list(range(uid_base, uid_base + uid_count)) if use_setuid else []
        self.use_setuid = use_setuid
        self.seccomp_filter = seccomp_filter
        self.sessions: dict[str, Session] = {}
        self.selector = selectors.DefaultSelector()
        self.inbox = FrameBuffer()
        self.fd_owner: dict[int, Session] = {}
        self.counter = 0
        os.set_blocking(proto_in, False)
        self.selector.register(proto_in, selectors.EVENT_READ, self.on_request_bytes)

    def reply(self, message: dict) -> None:
        try:
            os.set_blocking(self.proto_out, True)
            write_all(self.proto_out, encode_frame(message))
        except OSError:
            pass  # the orchestrator is gone; EOF on stdin shuts us down

    # -- main loop

    def serve(self) -> None:
        while True:
            busy = [s.deadline for s in self.sessions.values() if s.phase == "busy"]
            timeout = max(0.0, min(busy) - time.monotonic()) if busy else None
            for key, _ in self.selector.select(timeout):
                if self.selector.get_map().get(key.fd) is not key:
                    continue  # unregistered (maybe its fd number reused) by an earlier callback of this batch
                try:
                    key.data(key.fd)
                except Exception:  # noqa: BLE001 - a bug here must not take every session of this worker down
                    traceback.print_exc()
            now = time.monotonic()
            for session in list(self.sessions.values()):
                if session.phase == "busy" and now >= session.deadline:
                    self.on_timeout(session)

    def on_request_bytes(self, fd: int) -> None:
        try:
            data = os.read(fd, 1 << 20)
        except BlockingIOError:
            return
        if not data:
            self.shutdown()
        for request in self.inbox.feed(data):
            try:
                self.handle(request)
            except Exception as exc:  # noqa: BLE001 - a bad request must not kill other sessions
                self.reply({"id": request.get("id"), "ok": False, "error": f"{type(exc).__name__}: {exc}"})

    def handle(self, request: dict) -> None:
        op, rid = request.get("op"), request.get("id")
        if op == "open":
            self.open_session(request)
        elif op == "run":
            session = self.sessions[request["session"]]
            if session.phase == "broken":
                raise RuntimeError("the session is broken (its process failed to restart); open a new one")
            if session.phase == "busy" or session.queued_run is not None:
                raise RuntimeError("a cell is already running in this session")
            if session.phase == "starting":
                session.queued_run = request
            else:
                self.start_cell(session, request)
        elif op == "close":
            session = self.sessions.pop(request["session"], None)
            if session is None:
                self.reply({"id": rid, "ok": True})
            else:
                self.stop_child(session)
                self.cleanup(session, reply_to=rid)
        elif op == "ping":
            self.reply({"id": rid, "ok": True, "sessions": len(self.sessions)})
        elif op == "shutdown":
            self.reply({"id": rid, "ok": True})
            self.shutdown()
        else:
            raise ValueError(f"unknown op {op!r}")

    # -- sessions

    def open_session(self, request: dict) -> None:
        sid = str(request["session"])
        if sid in self.sessions:
            raise ValueError(f"session {sid} is already open")
        uid = None
        if self.use_setuid:
            if not self.uids:
                raise RuntimeError("no free session uid")
            uid = self.uids.pop(0)
        self.counter += 1
        workdir = os.path.join(self.session_root, f"s{self.counter}-{os.getpid()}")
        os.mkdir(workdir, 0o700)
        if uid is not None:
            os.chown(workdir, uid, uid)
        limits = dict(DEFAULT_LIMITS, **(request.get("limits") or {}))
        images = [base64.b64decode(item) for item in request.get("images") or []]
        session = Session(sid, uid, workdir, images, limits)
        session.open_request = request.get("id")
        self.sessions[sid] = session
        self.start_child(session)

    def start_child(self, session: Session) -> None:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        parent_sock, child_sock = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            session_child_main(child_sock, out_w, err_w, session.workdir, session.uid, session.limits, session.images, self.seccomp_filter)
        os.close(out_w)
        os.close(err_w)
        child_sock.close()
        session.pid, session.phase, session.frames = pid, "starting", FrameBuffer()
        session.ctrl = parent_sock
        session.pipes = {out_r: session.stdout, err_r: session.stderr}
        session.pidfd = exit_watch_fd(pid)
        for fd in session.pipes:
            os.set_blocking(fd, False)
            self.selector.register(fd, selectors.EVENT_READ, self.on_output)
        self.selector.register(parent_sock, selectors.EVENT_READ, lambda fd, s=session: self.on_ctrl(s))
        self.selector.register(session.pidfd, selectors.EVENT_READ, lambda fd, s=session: self.on_child_exit(s))
        for fd in session.pipes:
            self.fd_owner[fd] = session
        parent_sock.setblocking(False)

    def on_output(self, fd: int) -> None:
        session = self.fd_owner.get(fd)
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        if not chunk:
            self.selector.unregister(fd)
            os.close(fd)
            self.fd_owner.pop(fd, None)
            if session is not None:
                session.pipes.pop(fd, None)
            return
        if session is not None:
            session.pipes[fd].add(chunk)

    def drain(self, session: Session) -> None:
        for fd in list(session.pipes):
            for _ in range(4096):
                try:
                    chunk = os.read(fd, 1 << 16)
                except BlockingIOError:
                    break
                if not chunk:
                    self.on_output_closed(session, fd)
                    break
                session.pipes[fd].add(chunk)

    def on_output_closed(self, session: Session, fd: int) -> None:
        self.selector.unregister(fd)
        os.close(fd)
        self.fd_owner.pop(fd, None)
        session.pipes.pop(fd, None)

    def on_ctrl(self, session: Session) -> None:
        if session.ctrl is None:
            return
        try:
            data = session.ctrl.recv(1 << 20)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.selector.unregister(session.ctrl)
            session.ctrl.close()
            session.ctrl = None
            return
        try:
            frames = session.frames.feed(data)
        except ValueError:  # the cell wrote garbage on the control fd: the channel is unusable, restart clean
            self.restart_after_garbage(session)
            return
        for frame in frames:
            if session.phase == "starting":
                self.on_child_ready(session, frame)
            elif session.phase == "busy":
                self.finish_cell(session, frame)

    def restart_after_garbage(self, session: Session) -> None:
        self.stop_child(session)
        if session.phase == "starting":
            if session.open_request is not None:
                self.fail_open(session, "the session process sent a malformed frame while starting")
            return
        if session.phase == "busy":
            self.finish_cell(session, {}, error_type="SandboxError", error=(
                "the cell wrote to the sandbox's control channel; the session restarted: variables from earlier cells "
                "are lost, files in the working directory are kept"))
        self.start_child(session)

    def on_child_ready(self, session: Session, frame: dict) -> None:
        if not frame.get("ready"):
            if session.open_request is not None:
                self.fail_open(session, frame.get("error", "session failed to start"))
            return
        session.phase, session.failures = "idle", 0
        if session.open_request is not None:
            self.reply({"id": session.open_request, "ok": True, "session": session.sid})
            session.open_request = None
        if session.queued_run is not None:
            request, session.queued_run = session.queued_run, None
            self.start_cell(session, request)

    def fail_open(self, session: Session, message: str) -> None:
        rid, session.open_request = session.open_request, None
        self.sessions.pop(session.sid, None)
        self.stop_child(session)
        self.cleanup(session)
        self.reply({"id": rid, "ok": False, "error": message})

    def start_cell(self, session: Session, request: dict) -> None:
        timeout = float(request.get("timeout_s") or 15.0)
        session.run_request, session.phase = request, "busy"
        session.started = time.monotonic()
        session.deadline = session.started + timeout
        try:
            session.ctrl.setblocking(True)
            session.cells += 1
            session.ctrl.sendall(encode_frame({"code": request.get("code", ""), "cell": session.cells}))
            session.ctrl.setblocking(False)
        except (OSError, AttributeError):
            pass  # the child is gone; on_child_exit finishes the cell

    def finish_cell(self, session: Session, result: dict, **override) -> None:  # noqa: ANN003
        self.drain(session)
        request, session.run_request = session.run_request, None
        session.phase = "idle" if not override else session.phase
        stdout, out_cut = session.stdout.take()
        stderr, err_cut = session.stderr.take()
        notes = session.notes + list(result.get("notes") or [])
        session.notes = []
        if notes:
            separator = "\n" if stderr and not stderr.endswith("\n") else ""
            stderr += separator + "\n".join(f"[sandbox] {note}" for note in notes)
        observation = {
            "stdout": stdout,
            "stderr": stderr,
            "images": list(result.get("images") or []),
            "error_type": result.get("error_type"),
            "error": result.get("error"),
            "duration_s": round(time.monotonic() - session.started, 6),
            "timed_out": False,
            "truncated": out_cut or err_cut,
        }
        observation.update(override)
        self.reply({"id": request.get("id"), "ok": True, "observation": observation})

    def on_timeout(self, session: Session) -> None:
        timeout = session.deadline - session.started
        self.stop_child(session)
        message = (
            f"the cell exceeded the {timeout:g} s wall-clock limit and was killed; the session restarted: "
            "variables from earlier cells are lost, files in the working directory are kept"
        )
        self.finish_cell(session, {}, error_type="Timeout", error=message, timed_out=True)
        self.start_child(session)

    def on_child_exit(self, session: Session) -> None:
        if not session.pid:
            return
        status = self.reap(session)
        description = describe_exit(status)
        if session.phase == "starting" and session.open_request is not None:
            self.drain(session)
            detail = session.stderr.take()[0].strip().splitlines()[-1:] or [description]
            self.fail_open(session, f"session failed to start ({description}): {detail[0]}")
            return
        if session.phase == "busy":
            self.finish_cell(
                session, {}, error_type="Killed" if "signal" in description else "ProcessExit",
                error=f"the session process {description}; the session restarted: variables from earlier cells are lost, "
                "files in the working directory are kept",
            )
        else:
            session.notes.append(f"the session process {description} between cells and was restarted; variables are lost")
        self.unregister_child(session)
        if session.phase == "starting":
            session.failures += 1
        if session.failures >= 3:
            session.phase = "broken"
            if session.queued_run is not None:
                request, session.queued_run = session.queued_run, None
                self.reply({"id": request.get("id"), "ok": False, "error": f"the session cannot restart ({description})"})
        elif session.sid in self.sessions:
            self.start_child(session)

    def reap(self, session: Session) -> int:
        if not session.pid:
            return 0
        try:
            _, status = os.waitpid(session.pid, 0)
        except ChildProcessError:
            status = 0
        return status

    def stop_child(self, session: Session) -> None:
        """Kill the session's whole process group and forget its fds (output already written is kept)."""
        if session.pid:
            for target in (-session.pid, session.pid):
                try:
                    os.kill(target, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            self.reap(session)
            self.drain(session)
        self.unregister_child(session)

    def unregister_child(self, session: Session) -> None:
        for fd in list(session.pipes):
            self.on_output_closed(session, fd)
        if session.ctrl is not None:
            self.selector.unregister(session.ctrl)
            session.ctrl.close()
            session.ctrl = None
        if session.pidfd >= 0:
            self.selector.unregister(session.pidfd)
            os.close(session.pidfd)
            session.pidfd = -1
        session.pid = 0

    def cleanup(self, session: Session, reply_to: int | None = None) -> None:
        """Remove everything the session left: processes of its uid, its directory, its files in /tmp.

        With per-session uids the worker briefly acts as the session's uid (so it needs no DAC override
        and `kill(-1)` reaches exactly the session's leftovers; no fork, which costs more than the rest);
        the close request is answered when it is done, so a following session never sees the remains.
        """
        if session.uid is None:
            shutil.rmtree(session.workdir, ignore_errors=True)
            if reply_to is not None:
                self.reply({"id": reply_to, "ok": True})
            return
        try:
            # real and effective ids become the session's, the saved uid stays 0: effective capabilities are
            # dropped meanwhile, so kill(-1) reaches exactly the processes of this uid and file removal has
            # exactly its rights; then we switch back
            os.setresgid(session.uid, session.uid, 0)
            os.setresuid(session.uid, session.uid, 0)
            try:
                os.kill(-1, signal.SIGKILL)  # every process still running as this session's uid
            except OSError:
                pass
            shutil.rmtree(session.workdir, ignore_errors=True)
            for shared in ("/tmp", "/var/tmp", "/dev/shm"):
                remove_owned_entries(shared, session.uid)
        finally:
            try:
                os.setresuid(0, 0, 0)
                os.setresgid(0, 0, 0)
            except OSError:
                os._exit(71)  # never keep running with the wrong identity
        shutil.rmtree(session.workdir, ignore_errors=True)  # the now empty directory, in the root-owned area
        self.uids.append(session.uid)
        if reply_to is not None:
            self.reply({"id": reply_to, "ok": True})

    def shutdown(self) -> None:
        for session in list(self.sessions.values()):
            self.stop_child(session)
            self.cleanup(session)
        if self.owns_session_root:
            shutil.rmtree(self.session_root, ignore_errors=True)
        os._exit(0)


def remove_owned_entries(directory: str, uid: int) -> None:
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        try:
            if entry.stat(follow_symlinks=False).st_uid != uid:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
        except OSError:
            pass


def exit_watch_fd(pid: int) -> int:
    """An fd that becomes readable when child `pid` exits: its pidfd, or where pidfd_open is missing (gVisor's
    runsc, kernels < 5.3) a pipe written by a thread that waits without reaping (WNOWAIT), so the status stays
    for the worker's own waitpid. Session children close inherited fds, so they cannot fake an exit."""
    try:
        return os.pidfd_open(pid)
    except OSError as exc:
        if exc.errno != errno.ENOSYS:
            raise
    read_end, write_end = os.pipe()

    def wait_then_signal() -> None:
        try:
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            pass
        try:
            os.write(write_end, b"x")
        except OSError:
            pass
        os.close(write_end)

    threading.Thread(target=wait_then_signal, daemon=True).start()
    return read_end


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


def describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = str(number)
        return f"was killed by signal {name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


def main(argv: list[str] | None = None) -> None:
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description="CodeDance sandbox warm worker (speaks framed JSON on stdin/stdout).")
    parser.add_argument("--session-root", default=None, help="Directory for session working dirs (default: a new temp dir).")
    parser.add_argument("--uid-base", type=int, default=100000, help="First uid given to sessions when running as root.")
    parser.add_argument("--uid-count", type=int, default=1000, help="Number of session uids (max concurrent sessions).")
    parser.add_argument("--no-setuid", action="store_true", help="Run sessions with the worker's uid even as root.")
    parser.add_argument("--no-seccomp", action="store_true", help="Do not load the seccomp filter.")
    args = parser.parse_args(argv)

    proto_in, proto_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # stray prints from imports go to stderr, never into the protocol stream
    sys.stdout = sys.stderr
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    os.environ.setdefault("MPLBACKEND", "Agg")
    warnings = preload()
    seccomp_filter, problem = (None, "seccomp disabled by --no-seccomp") if args.no_seccomp else build_seccomp_filter()
    if problem:
        warnings.append(problem)
    use_setuid = os.geteuid() == 0 and not args.no_setuid
    if use_setuid and not world_traversable(os.path.dirname(os.__file__)):
        warnings.append(f"the standard library at {os.path.dirname(os.__file__)} is not readable by session uids: "
                        "modules that are not pre-imported will fail to import (use bwrap or a world-readable Python)")
    if os.geteuid() != 0:
        warnings.append("worker is not root: sessions share its uid (no per-session uid, RLIMIT_NPROC shared)")
    session_root = args.session_root or tempfile.mkdtemp(prefix="codedance-sessions-")
    os.chmod(session_root, 0o711)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    worker = Worker(proto_in, proto_out, session_root, args.uid_base, args.uid_count, use_setuid, seccomp_filter)
    worker.owns_session_root = args.session_root is None
    worker.reply({
        "op": "ready",
        "pid": os.getpid(),
        "python": sys.version.split()[0],
        "layers": {"seccomp": seccomp_filter is not None, "setuid": use_setuid},
        "warnings": warnings,
    })
    worker.serve()


if __name__ == "__main__":
    main()
