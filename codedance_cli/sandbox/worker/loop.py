"""The worker's event loop and entry point: requests in on stdin, replies out on stdout, one process, many sessions.

Single-threaded on purpose: a selector multiplexes the orchestrator's requests, every session child's
output pipes, control socket and exit fd, and the deadline of every running cell. The worker never runs
model code itself; that happens in the session children (runtime.py).
"""

from __future__ import annotations

import base64
import os
import selectors
import shutil
import signal
import sys
import time
import traceback
from typing import Any

from .framing import FrameBuffer, encode_frame, write_all
from .lockdown import build_seccomp_filter, preload, world_traversable
from .processes import Session, SessionProcesses, describe_exit

DEFAULT_LIMITS = {
    "cpu_s": 15,
    "memory_mb": 2048,
    "file_size_mb": 64,
    "max_open_files": 256,
    "max_processes": 64,
    "max_output_chars": 8000,
    "max_images_per_cell": 8,
}
RESTARTED = "the session restarted: variables from earlier cells are lost, files in the working directory are kept"


class Worker(SessionProcesses):
    """Single-threaded event loop multiplexing sessions; never runs model code itself."""

    def __init__(self, proto_in: int, proto_out: int, session_root: str, uid_base: int, uid_count: int,
                 use_setuid: bool, seccomp_filter: Any) -> None:
        super().__init__(session_root, uid_base, uid_count, use_setuid, seccomp_filter)
        self.proto_in, self.proto_out = proto_in, proto_out
        self.sessions: dict[str, Session] = {}
        self.inbox = FrameBuffer()
        self.counter = 0
        os.set_blocking(proto_in, False)
        self.selector.register(proto_in, selectors.EVENT_READ, self.on_request_bytes)

    def reply(self, message: dict[str, Any]) -> None:
        try:
            os.set_blocking(self.proto_out, True)
            write_all(self.proto_out, encode_frame(message))
        except OSError:
            pass  # the orchestrator is gone; EOF on stdin shuts us down

    def serve(self) -> None:
        """Run until stdin closes or a shutdown request arrives (both end the process)."""
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

    def handle(self, request: dict[str, Any]) -> None:
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
            if session is not None:
                self.stop_child(session)
                self.cleanup(session)
            self.reply({"id": rid, "ok": True})
        elif op == "ping":
            self.reply({"id": rid, "ok": True, "sessions": len(self.sessions)})
        elif op == "shutdown":
            self.reply({"id": rid, "ok": True})
            self.shutdown()
        else:
            raise ValueError(f"unknown op {op!r}")

    def open_session(self, request: dict[str, Any]) -> None:
        """A private directory (and uid, as root) for the session, then its child; answered once it is ready."""
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
            self.finish_cell(session, {}, error_type="SandboxError",
                             error=f"the cell wrote to the sandbox's control channel; {RESTARTED}")
        self.start_child(session)

    def on_child_ready(self, session: Session, frame: dict[str, Any]) -> None:
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

    def start_cell(self, session: Session, request: dict[str, Any]) -> None:
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

    def finish_cell(self, session: Session, result: dict[str, Any], **override: Any) -> None:
        """Reply to the run request: the child's result plus the drained, capped output (or an override's error)."""
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
        message = f"the cell exceeded the {timeout:g} s wall-clock limit and was killed; {RESTARTED}"
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
            self.finish_cell(session, {}, error_type="Killed" if "signal" in description else "ProcessExit",
                             error=f"the session process {description}; {RESTARTED}")
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

    def shutdown(self) -> None:
        for session in list(self.sessions.values()):
            self.stop_child(session)
            self.cleanup(session)
        if self.owns_session_root:
            shutil.rmtree(self.session_root, ignore_errors=True)
        os._exit(0)


def main(argv: list[str] | None = None) -> None:
    """Parse flags, take stdin/stdout for the protocol, warm up, say `ready`, serve."""
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
