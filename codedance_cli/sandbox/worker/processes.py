"""The worker's side of each session: its child process, output pipes and control socket, and their clean-up.

Kept apart from the request loop (loop.py) because this is where the worker touches processes and
identities: forking a child, killing its process group, and removing what a session uid left behind.
"""

from __future__ import annotations

import errno
import os
import selectors
import shutil
import signal
import socket
import threading
import time
from typing import Any

from .framing import FrameBuffer
from .runtime import session_child_main


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
        """The text so far (with a truncation marker when needed) and whether it was cut; resets the buffer."""
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

    def __init__(self, sid: str, uid: int | None, workdir: str, images: list[bytes], limits: dict[str, Any]) -> None:
        self.sid, self.uid, self.workdir, self.images, self.limits = sid, uid, workdir, images, limits
        self.pid = 0
        self.pidfd = -1
        self.ctrl: socket.socket | None = None
        self.pipes: dict[int, CappedOutput] = {}
        self.frames = FrameBuffer()
        self.phase = "starting"  # starting -> idle <-> busy; broken when it cannot restart
        self.open_request: int | None = None
        self.queued_run: dict[str, Any] | None = None
        self.run_request: dict[str, Any] | None = None
        self.started = 0.0
        self.deadline = float("inf")
        self.stdout = CappedOutput(int(limits["max_output_chars"]))
        self.stderr = CappedOutput(int(limits["max_output_chars"]))
        self.notes: list[str] = []
        self.cells = 0
        self.failures = 0  # consecutive deaths before `ready`; a session that cannot start is marked broken


class SessionProcesses:
    """Starts, watches, drains, kills and cleans up session children; loop.Worker adds the requests on top."""

    def __init__(self, session_root: str, uid_base: int, uid_count: int, use_setuid: bool, seccomp_filter: Any) -> None:
        self.session_root = session_root
        self.owns_session_root = False  # set by main() when it made a temp dir
        self.uids = list(range(uid_base, uid_base + uid_count)) if use_setuid else []
        self.use_setuid = use_setuid
        self.seccomp_filter = seccomp_filter
        self.selector = selectors.DefaultSelector()
        self.fd_owner: dict[int, Session] = {}

    def on_ctrl(self, session: Session) -> None:
        """The child's control socket is readable (implemented by the request loop)."""
        raise NotImplementedError

    def on_child_exit(self, session: Session) -> None:
        """The child exited (implemented by the request loop)."""
        raise NotImplementedError

    def start_child(self, session: Session) -> None:
        """Fork the session's child (it locks itself down) and watch its pipes, socket and exit."""
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
        """Read what the child already wrote, so a cell's observation has all of its output."""
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

    def cleanup(self, session: Session) -> None:
        """Remove everything the session left: processes of its uid, its directory, its files in /tmp.

        With per-session uids the worker briefly acts as the session's uid (so it needs no DAC override
        and `kill(-1)` reaches exactly the session's leftovers; no fork, which costs more than the rest);
        a close request is answered after this, so a following session never sees the remains.
        """
        if session.uid is None:
            shutil.rmtree(session.workdir, ignore_errors=True)
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
        wait_until_gone(session.uid)  # as root again: our own /proc entry no longer has the session's uid
        shutil.rmtree(session.workdir, ignore_errors=True)  # the now empty directory, in the root-owned area
        self.uids.append(session.uid)


def wait_until_gone(uid: int, limit_s: float = 2.0) -> None:
    """Wait (bounded) until no process of `uid` is left, reaped or not.

    SIGKILL is asynchronous, and orphans are reaped by the container's init: until then they still count against
    the pids limit, so a following session answered too early could find `fork` refused (BlockingIOError).
    Where /proc cannot be read the wait ends at once: the kill has still been sent.
    """
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and uid_has_processes(uid):
        time.sleep(0.005)


def uid_has_processes(uid: int) -> bool:
    try:
        pids = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return False
    own = str(os.getpid())
    for pid in pids:
        if pid == own:
            continue
        try:
            if os.stat(f"/proc/{pid}").st_uid == uid:
                return True
        except OSError:
            continue  # gone meanwhile
    return False


def remove_owned_entries(directory: str, uid: int) -> None:
    """Delete the entries of a shared directory (/tmp, ...) that belong to `uid`."""
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


def describe_exit(status: int) -> str:
    """A wait status in words, for the observation ("was killed by signal SIGKILL")."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = str(number)
        return f"was killed by signal {name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"
