"""The session child: the namespace the model's code runs in, kept across cells, and what one cell returns.

Runs only in a forked, locked-down child (see lockdown.lock_down). The worker sends it one cell at a time
on the control socket (fd 3); stdout/stderr are the pipes the worker drains and caps; the reply carries
the error (traceback cleaned of the worker's own frames), the images (capture.py) and notes.
"""

from __future__ import annotations

import ast
import builtins
import io
import linecache
import os
import socket
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

from .capture import ImageCapture
from .framing import encode_frame, read_frame_blocking, write_all
from .lockdown import arm_cpu_limit, disarm_cpu_limit, lock_down

# Frames from any module of this package are the worker's, never shown to the model (both spellings of the
# folder: code objects keep the path the module was imported by).
WORKER_DIRS = frozenset({os.path.dirname(__file__), os.path.dirname(os.path.abspath(__file__))})
T = TypeVar("T")


class SessionRuntime:
    """Lives in the forked session child: runs cells in a persistent namespace and collects their output."""

    def __init__(self, ctrl_fd: int, limits: dict[str, Any]) -> None:
        self.ctrl_fd = ctrl_fd
        self.limits = limits
        self.owner_pid = os.getpid()
        self.cell_index = 0
        self.notes: list[str] = []
        self.input_names: set[str] = set()
        self.capture = ImageCapture(limits, self.notes)
        import numpy
        import PIL.Image

        self.namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins, "display": self.capture.display}
        self.namespace.update(np=numpy, Image=PIL.Image)
        if self.capture.plt is not None:
            self.namespace["plt"] = self.capture.plt
        if "cv2" in sys.modules:
            self.namespace["cv2"] = sys.modules["cv2"]
        self.capture.patch_display_hooks()

    def load_inputs(self, images: list[bytes]) -> None:
        """Write input images (converted to PNG here, inside the sandbox) and open them lazily."""
        Image = self.capture.Image
        opened = []
        for index, data in enumerate(images):
            name = "input_image.png" if index == 0 else f"input_image_{index + 1}.png"
            if not os.path.exists(name):
                if not data.startswith(b"\x89PNG\r\n\x1a\n"):
                    buffer = io.BytesIO()
                    Image.open(io.BytesIO(data)).save(buffer, format="PNG", compress_level=1)
                    data = buffer.getvalue()
                with open(name, "wb") as handle:
                    handle.write(data)
                if index == 0 and not os.path.lexists("input_image.jpg"):
                    os.symlink("input_image.png", "input_image.jpg")  # CodeDance's data calls it input_image.jpg
            opened.append(Image.open(name))  # lazy: pixels are decoded on first use
        self.namespace["input_images"] = opened
        self.namespace["input_image"] = opened[0] if opened else None
        self.namespace["input_image_path"] = "input_image.png" if opened else None
        self.input_names = {"input_image.png", "input_image.jpg"} | {f"input_image_{i + 1}.png" for i in range(len(opened))}

    def run_cell(self, code: str, cell_index: int) -> dict[str, Any]:
        """Run one cell like a notebook (a last expression is shown); the reply the worker turns into an observation."""
        self.cell_index = cell_index or self.cell_index + 1
        filename = f"<cell {self.cell_index}>"
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        result: dict[str, Any] = {"error_type": None, "error": None}
        before = self._safe(self.capture.snapshot_files, {})
        arm_cpu_limit(int(self.limits["cpu_s"]))
        try:
            tree = ast.parse(code, filename, "exec")
            last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
            exec(compile(tree, filename, "exec"), self.namespace)  # noqa: S102 - this is the sandbox
            if last is not None:
                value = eval(compile(ast.Expression(last.value), filename, "eval"), self.namespace)  # noqa: S307
                if value is not None and not self.capture.capture_value(value):
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
            disarm_cpu_limit()
        self._safe(self.capture.capture_open_figures, None)
        self._safe(lambda: self.capture.collect_saved_files(before, self.input_names), None)
        result["images"] = self._safe(self.capture.encode_captured, [])
        self._flush_streams()
        result["notes"] = list(self.notes)
        self.notes.clear()
        return result

    def _safe(self, function: Callable[[], T], default: T) -> T:
        try:
            return function()
        except BaseException as exc:  # noqa: BLE001 - e.g. fd exhaustion or MemoryError left by the cell
            self.notes.append(f"output collection failed: {type(exc).__name__}: {exc}")
            return default

    def _flush_streams(self) -> None:
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - the cell may have replaced or closed them
                pass
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__

    def serve(self) -> None:
        """Answer cells until the worker closes the control socket."""
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
    kept = [f for f in summary.stack if os.path.dirname(f.filename) not in WORKER_DIRS]
    summary.stack = traceback.StackSummary.from_list(kept)
    for chained in (summary.__cause__, summary.__context__):
        if chained is not None:
            _drop_worker_frames(chained, seen)


def session_child_main(ctrl: socket.socket, out_w: int, err_w: int, workdir: str, uid: int | None,
                       limits: dict[str, Any], images: list[bytes], seccomp_filter: Any) -> None:
    """Runs in the forked child: lock the process down, then serve cells until the worker closes the socket."""
    try:
        ctrl_fd = lock_down(ctrl, out_w, err_w, workdir, uid, limits, seccomp_filter)
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
