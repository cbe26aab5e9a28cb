"""Hostile code against every sandbox backend: each attack is contained, reported, and the next session works.

Parametrized over backends: `local` always; `docker` when `codedance_cli.sandbox.docker_backend` exists
(the Docker engineer's module; it needs a Docker engine, which scripts/system_deps.sh starts in CI).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import time
import uuid
from pathlib import Path

import pytest

from codedance_cli.recipes.common import SandboxConfig
from codedance_cli.sandbox import create_sandbox

pytestmark = pytest.mark.timeout(180)  # a hang fails fast instead of eating the suite's budget
SECRET_NAME, SECRET_VALUE = "CODEDANCE_HOSTILE_TEST_SECRET", "s3cr3t-" + uuid.uuid4().hex
CONFIG = dict(workers=2, timeout_s=3, cpu_s=10, memory_mb=1024, file_size_mb=16, max_open_files=128,
              max_processes=32, max_output_chars=2000)


@pytest.fixture(scope="module")
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module", params=["local", pytest.param("docker", marks=pytest.mark.docker)])
def backend(request, loop):
    if request.param == "docker" and importlib.util.find_spec("codedance_cli.sandbox.docker_backend") is None:
        pytest.skip("the Docker backend module does not exist yet")
    if request.param == "docker":
        from codedance_cli.sandbox.image import build_image

        build_image()  # starts dockerd if none answers; builds the image if missing or stale (cached: < 1 s)
    os.environ[SECRET_NAME] = SECRET_VALUE  # the orchestrator's environment must not reach the code
    sandbox = create_sandbox(SandboxConfig(backend=request.param, **CONFIG))
    if hasattr(sandbox, "start"):
        loop.run_until_complete(sandbox.start())
    yield request.param, sandbox
    loop.run_until_complete(sandbox.close())


@pytest.fixture
def sandbox(backend):
    return backend[1]


class Cells:
    """Synchronous helper over one session, plus the 'next session works' check."""

    def __init__(self, loop, sandbox) -> None:  # noqa: ANN001
        self.loop, self.sandbox = loop, sandbox
        self.session = loop.run_until_complete(sandbox.open_session())

    def run(self, code: str, timeout_s: float | None = None):  # noqa: ANN201
        return self.loop.run_until_complete(self.session.run(code, timeout_s))

    def close(self) -> None:
        self.loop.run_until_complete(self.session.close())


@pytest.fixture
def cells(loop, sandbox):
    helper = Cells(loop, sandbox)
    yield helper
    helper.close()
    fresh = Cells(loop, sandbox)  # every attack: the next session must work
    assert fresh.run("print(6 * 7)").stdout == "42\n"
    fresh.close()


def test_infinite_loop_times_out_and_session_recovers(cells):
    cells.run("before = 1")
    started = time.monotonic()
    observation = cells.run("print('spinning', flush=True)\nwhile True:\n    pass", timeout_s=1.5)
    assert observation.timed_out and observation.error_type == "Timeout"
    assert "spinning" in observation.stdout
    assert time.monotonic() - started < 10
    after = cells.run("print('before' in globals())")
    assert after.stdout == "False\n"  # documented: state is lost after a timeout, the session still works


def test_fork_bomb_is_contained(cells):
    observation = cells.run("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass", timeout_s=2)
    assert not observation.ok
    assert cells.run("print('ok')").stdout == "ok\n"


def test_memory_hog_raises_memory_error(cells):
    observation = cells.run("hog = bytearray(3 << 30)")
    assert observation.error_type == "MemoryError"
    growing = cells.run("chunks = []\nwhile True:\n    chunks.append(np.ones(128 << 20, np.uint8))", timeout_s=20)  # touched pages
    assert growing.error_type in ("MemoryError", "Killed")
    assert cells.run("del chunks\nprint('freed')").stdout.endswith("freed\n")


def test_huge_stdout_is_truncated(cells):
    observation = cells.run("print('x' * 50_000_000)")
    assert observation.truncated and len(observation.stdout) < 3000
    flood = cells.run("while True:\n    print('y' * 10000)", timeout_s=1.5)
    assert flood.timed_out and flood.truncated and len(flood.stdout) < 3000


def test_huge_file_is_refused(cells):
    observation = cells.run("with open('big.bin', 'wb') as f:\n    f.write(b'0' * (64 << 20))")
    assert observation.error_type == "OSError" and "File too large" in observation.error
    assert cells.run("import os\nprint(os.path.getsize('big.bin') <= 16 << 20)").stdout == "True\n"


def test_host_secrets_are_unreadable(cells):
    project = Path(__file__).resolve()
    code = f"""
import os, glob
found = []
for path in ['/etc/shadow', {str(project)!r}, {str(project.parent.parent / 'pyproject.toml')!r}]:
    try:
        open(path).read(); found.append(path)
    except OSError:
        pass
print('readable:', found)
print('env:', {SECRET_NAME!r} in os.environ or any({SECRET_VALUE!r} in v for v in os.environ.values()))
leaks = []
for environ in glob.glob('/proc/*/environ'):
    try:
        if {SECRET_VALUE!r}.encode() in open(environ, 'rb').read():
            leaks.append(environ)
    except OSError:
        pass
print('proc:', leaks)
"""
    observation = cells.run(code)
    assert observation.stdout.splitlines() == ["readable: []", "env: False", "proc: []"], observation


def test_network_to_loopback_server_is_blocked(cells):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    code = f"""
import socket, urllib.request
results = []
for family, address in [(socket.AF_INET, ('127.0.0.1', {port})), (socket.AF_INET6, ('::1', {port}))]:
    try:
        s = socket.socket(family); s.settimeout(2); s.connect(address); results.append('connected')
    except OSError as exc:
        results.append(type(exc).__name__)
try:
    urllib.request.urlopen('http://127.0.0.1:{port}/', timeout=2); results.append('http')
except Exception as exc:
    results.append(type(exc).__name__)
for path in ('/var/run/docker.sock', '/run/containerd/containerd.sock'):   # host daemons on unix sockets
    try:
        s = socket.socket(socket.AF_UNIX); s.settimeout(2); s.connect(path); results.append('connected')
    except OSError as exc:
        results.append(type(exc).__name__)
print(results)
"""
    observation = cells.run(code)
    assert "connected" not in observation.stdout and "'http'" not in observation.stdout, observation
    server.setblocking(False)  # a completed handshake would be waiting in the backlog
    with pytest.raises(BlockingIOError):
        server.accept()
    server.close()


def test_killing_parent_and_init_is_refused(cells):
    observation = cells.run("""
import os, signal
results = []
for pid in (os.getppid(), 1):
    try:
        os.kill(pid, signal.SIGKILL); results.append('killed')
    except OSError as exc:
        results.append(type(exc).__name__)
print(results)
""")
    assert "killed" not in observation.stdout, observation
    assert cells.run("print('worker alive')").stdout == "worker alive\n"


def test_killing_own_process_group_restarts_session(cells):
    cells.run("state = 1")
    observation = cells.run("import os, signal\nos.killpg(os.getpgid(0), signal.SIGKILL)")
    assert observation.error_type == "Killed" and "restarted" in observation.error
    assert cells.run("print('state' in globals())").stdout == "False\n"


def test_fd_exhaustion(cells):
    observation = cells.run("handles = []\nwhile True:\n    handles.append(open('/dev/null'))")
    assert observation.error_type == "OSError" and "Too many open files" in observation.error
    assert cells.run("for h in handles: h.close()\ndel handles\nprint('closed')").stdout == "closed\n"


def test_background_processes_die_with_the_session(loop, sandbox):
    marker = str(int(time.time() * 1000) % 10_000_000 + 10_000_000)
    helper = Cells(loop, sandbox)
    observation = helper.run(f"""
import os, subprocess
subprocess.Popen(['sleep', '{marker}'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
if os.fork() == 0:                                  # a detached grandchild trying to leave the group
    try:
        os.setsid()
    except OSError:
        pass
    if os.fork() == 0:
        os.execvp('sleep', ['sleep', '{marker}1'])
    os._exit(0)
print('spawned')
""")
    assert observation.stdout == "spawned\n", observation
    time.sleep(0.3)
    assert _processes_with(marker), "the background processes should be running before close"
    helper.close()
    deadline = time.monotonic() + 10
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_with(marker) == []


def _processes_with(marker: str) -> list[int]:
    """Host pids whose command line mentions `marker` (sandboxed processes are host processes too)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(arg.startswith(marker.encode()) for arg in argv[1:]) and argv[0].endswith(b"sleep"):
                pids.append(int(entry.name))
    return pids


def test_no_state_leaks_between_sessions(loop, sandbox):
    tag = uuid.uuid4().hex
    first = Cells(loop, sandbox)
    setup = first.run(f"""
import builtins, os
LEAK = 1
builtins.LEAK_BUILTIN = 1
os.environ['LEAK_ENV'] = '1'
open('leak.txt', 'w').write('x')
open('/tmp/leak-{tag}', 'w').write('x')
import numpy; numpy.LEAK_MODULE = 1
print(os.getcwd())
""")
    assert setup.ok, setup
    first_cwd = setup.stdout.strip()
    concurrent = Cells(loop, sandbox)
    peek = concurrent.run(f"""
try:
    print(open({first_cwd + '/leak.txt'!r}).read())
except OSError as exc:
    print(type(exc).__name__)
""")
    assert peek.stdout.strip() != "x", "a session read another live session's files"
    concurrent.close()
    first.close()
    for _ in range(4):  # land on every worker
        later = Cells(loop, sandbox)
        check = later.run(f"""
import builtins, os, numpy
print('LEAK' in globals(), hasattr(builtins, 'LEAK_BUILTIN'), 'LEAK_ENV' in os.environ,
      os.path.exists('leak.txt'), os.path.exists('/tmp/leak-{tag}'), hasattr(numpy, 'LEAK_MODULE'))
""")
        later.close()
        assert check.stdout == "False False False False False False\n", check


def test_no_privileges_left_in_the_session(cells):
    observation = cells.run("""
import ctypes, os
status = dict(line.split(':', 1) for line in open('/proc/self/status').read().splitlines() if ':' in line)
print(os.getuid() != 0, status['CapEff'].strip(), status['NoNewPrivs'].strip(), status['Seccomp'].strip())
results = []
for attempt in (lambda: os.setuid(0), lambda: os.chroot('/'), lambda: os.setsid()):
    try:
        attempt(); results.append('allowed')
    except OSError as exc:
        results.append(type(exc).__name__)
libc = ctypes.CDLL(None, use_errno=True)
results.append(libc.unshare(0x10000000 | 0x40000000))   # CLONE_NEWUSER | CLONE_NEWNET
print(results)
""")
    lines = observation.stdout.splitlines()
    assert lines[0] == "True 0000000000000000 1 2", observation
    assert "allowed" not in lines[1] and lines[1].endswith("-1]"), observation


def test_tampering_with_the_control_channel_is_contained(cells):
    observation = cells.run("import os\nfor fd in range(3, 10):\n    try:\n        os.write(fd, b'\\xff' * 64)\n    except OSError:\n        pass")
    assert observation.error_type in (None, "SandboxError"), observation
    assert cells.run("print('usable')").stdout == "usable\n"
