"""Functional tests of the local sandbox backend: real workers (in bubblewrap when installed), real forks."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import time

import pytest
from PIL import Image
from typer.testing import CliRunner

from codedance_cli.errors import BadInput
from codedance_cli.recipes.common import SandboxConfig
from codedance_cli.sandbox import create_sandbox
from codedance_cli.sandbox.local import LocalSandbox
from codedance_cli.trajectory.schema import decode_image
from conftest import REPO_ROOT

pytestmark = pytest.mark.timeout(180)  # a hang fails fast instead of eating the suite's budget
CONFIG = SandboxConfig(workers=2, timeout_s=10, max_output_chars=500, max_images_per_cell=8)


@pytest.fixture(scope="module")
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def sandbox(loop):
    sandbox = create_sandbox(CONFIG)
    loop.run_until_complete(sandbox.start())
    yield sandbox
    loop.run_until_complete(sandbox.close())


@pytest.fixture
def run(loop, sandbox):
    """Run cells in one fresh session: run(code, ...) -> Observation."""
    session = loop.run_until_complete(sandbox.open_session([Image.new("RGB", (320, 200), (10, 200, 30))]))
    yield lambda code, timeout_s=None: loop.run_until_complete(session.run(code, timeout_s))
    loop.run_until_complete(session.close())


def sizes(observation) -> list[tuple[int, int]]:
    return [decode_image(data).size for data in observation.images]


def test_layers_are_active_where_available(sandbox):
    layers = sandbox.layers
    assert layers["seccomp"] is True
    assert layers["setuid"] is True
    assert isinstance(layers["bwrap"], bool)
    import shutil

    if shutil.which("bwrap"):
        assert layers["bwrap"] is True


def test_state_persists_across_cells(run):
    assert run("x = 20\ndef f(y):\n    return x + y").ok
    observation = run("print(f(22))\nimport math\nmath.pi > 3")
    assert observation.stdout == "42\nTrue\n"
    assert observation.duration_s > 0


def test_input_image_variables_and_file(run):
    observation = run("print(input_image.size, len(input_images), input_image_path)\n"
                      "import os\nprint(sorted(os.listdir('.')))\n"
                      "print(Image.open(input_image_path).getpixel((0, 0)), Image.open('input_image.jpg').size)")
    lines = observation.stdout.splitlines()
    assert lines[0] == "(320, 200) 1 input_image.png"
    assert "input_image.png" in lines[1] and "input_image.jpg" in lines[1]
    assert lines[2] == "(10, 200, 30) (320, 200)"


def test_several_input_images_including_jpeg_bytes(loop, sandbox):
    jpeg = io.BytesIO()
    Image.new("RGB", (100, 80), "white").save(jpeg, format="JPEG")

    async def go():
        async with await sandbox.open_session([Image.new("L", (64, 64)), jpeg.getvalue()]) as session:
            return await session.run("print([im.size for im in input_images], Image.open('input_image_2.png').format)")

    assert loop.run_until_complete(go()).stdout.strip() == "[(64, 64), (100, 80)] PNG"


def test_images_captured_every_way(run):
    code = """
import matplotlib.pyplot as plt
plt.plot([1, 2, 3]); plt.show()                       # 1 figure via plt.show
display(Image.new('RGB', (100, 60), 'red'))           # 2 display(PIL)
Image.new('RGB', (90, 70), 'blue').show()             # 3 Image.show
display(np.zeros((80, 120, 3), np.uint8))             # 4 display(ndarray)
Image.new('RGB', (130, 66), 'yellow').save('saved.png')  # 5 saved file
fig = plt.figure(figsize=(2, 2)); plt.plot([0, 1])    # 6 figure left open
cv2.imshow('win', np.zeros((75, 110, 3), np.uint8)); cv2.waitKey(0)  # 7 cv2.imshow (headless)
input_image.crop((0, 0, 150, 100))                    # 8 last expression
"""
    observation = run(code)
    assert observation.ok, observation.error
    got = sizes(observation)
    assert len(got) == 8, got
    assert {(100, 60), (90, 70), (120, 80), (130, 66), (110, 75), (150, 100)} <= set(got)
    assert run("plt.get_fignums()").stdout.strip() == "[]"  # captured figures are closed


def test_last_expression_array_and_value(run):
    assert sizes(run("np.full((64, 96, 3), 0.5)")) == [(96, 64)]  # float in 0..1 scaled
    bgr = run("a = np.zeros((60, 60, 3), np.uint8); a[..., 0] = 255; a")  # OpenCV order: channel 0 is blue
    assert decode_image(bgr.images[0]).getpixel((0, 0)) == (0, 0, 255)
    small = run("np.arange(9).reshape(3, 3)")
    assert small.images == [] and "array" in small.stdout
    assert run("{'a': 1}").stdout.strip() == "{'a': 1}"
    assert run("None").stdout == ""


def test_image_conventions_upscale_drop_dedupe_limit(run):
    assert sizes(run("Image.new('RGB', (20, 40))")) == [(112, 224)]
    wide = run("Image.new('RGB', (4000, 10))")
    assert wide.images == [] and "aspect ratio" in wide.stderr
    same = run("im = Image.new('RGB', (70, 70), 'red'); im.save('a.png'); display(im)")
    assert len(same.images) == 1
    many = run("for i in range(12): display(Image.new('RGB', (60 + i, 60)))")
    assert len(many.images) == 8 and "first 8 images" in many.stderr


def test_unchanged_files_are_not_reported_again(run):
    assert len(run("Image.new('RGB', (80, 80)).save('keep.png')").images) == 1
    assert run("print('again')").images == []


def test_output_truncated_with_marker(run):
    observation = run("print('y' * 100000)\nimport sys\nprint('e' * 3000, file=sys.stderr)")
    assert observation.truncated
    assert observation.stdout.startswith("y" * 500)
    assert "output truncated" in observation.stdout and len(observation.stdout) < 700
    assert "output truncated" in observation.stderr
    assert not run("print('short')").truncated


def test_traceback_is_cleaned(run):
    observation = run("def inner():\n    return {}['missing']\n\nvalue = 1\ninner()")
    assert observation.error_type == "KeyError"
    assert 'File "<cell 1>", line 5' in observation.error and "return {}['missing']" in observation.error
    assert "worker.py" not in observation.error and "codedance" not in observation.error
    syntax = run("def broken(:\n    pass")
    assert syntax.error_type == "SyntaxError" and "worker.py" not in syntax.error
    assert run("exit()").ok and run("import sys; sys.exit(3)").error_type == "SystemExit"
    assert run("print(value)").stdout == "1\n"  # exit() does not end the session


def test_subprocess_output_and_stderr_are_captured(run):
    observation = run("import subprocess, sys\nsubprocess.run(['echo', 'from-child'])\nprint('warn', file=sys.stderr)")
    assert "from-child" in observation.stdout and observation.stderr == "warn\n"


def test_eight_concurrent_sessions_are_parallel_and_isolated(loop, sandbox):
    async def one(index: int):
        async with await sandbox.open_session() as session:
            await session.run(f"mine = {index}")
            observation = await session.run("import time; time.sleep(0.6); print(mine)")
            return observation.stdout.strip()

    async def all_of_them():
        started = time.monotonic()
        results = await asyncio.gather(*(one(i) for i in range(8)))
        return results, time.monotonic() - started

    results, elapsed = loop.run_until_complete(all_of_them())
    assert results == [str(i) for i in range(8)]
    assert elapsed < 8 * 0.6  # sleeping cells overlap across sessions and workers


def test_recycling_after_n_sessions_and_worker_crash(loop):
    async def go():
        config = SandboxConfig(workers=1, sessions_per_worker=2, timeout_s=10)
        async with LocalSandbox(config) as sandbox:
            pids = []
            for _ in range(3):
                async with await sandbox.open_session() as session:
                    assert (await session.run("print(1)")).stdout == "1\n"
                    pids.append(session.worker.process.pid)
            assert pids[0] == pids[1] != pids[2]  # the first worker served its 2 sessions and was replaced
            session = await sandbox.open_session()
            await session.run("kept = 1")
            for worker in list(sandbox.workers):
                worker.process.kill()
            await asyncio.sleep(0.2)
            observation = await session.run("print('still here', 'kept' in globals())")
            await session.close()
            return observation

    observation = loop.run_until_complete(go())
    assert observation.stdout == "still here False\n"
    assert "worker died" in observation.stderr


def test_cli_run_json_and_images(tmp_path):
    from codedance_cli.sandbox_commands import app

    script = tmp_path / "cell.py"
    script.write_text("print(input_image.size)\ninput_image.crop((0, 0, 60, 60))\n")
    image = tmp_path / "in.png"
    Image.new("RGB", (100, 90)).save(image)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(script), "--image", str(image), "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["stdout"] == "(100, 90)\n" and payload["error_type"] is None
    assert [Image.open(p).size for p in payload["images"]] == [(60, 60)]
    missing = CliRunner().invoke(app, ["run", str(tmp_path / "nope.py")])
    assert isinstance(missing.exception, BadInput) and "nope.py" in str(missing.exception)


def test_fallback_without_bwrap_and_seccomp_warns_and_still_works(loop, caplog, monkeypatch):
    from codedance_cli.sandbox import bwrap

    monkeypatch.setattr(bwrap, "bwrap_usable", lambda: None)  # as on a machine without bubblewrap

    async def go():
        config = SandboxConfig(workers=1, use_seccomp=False, timeout_s=10)
        async with LocalSandbox(config) as sandbox:
            await sandbox.start()
            async with await sandbox.open_session() as first:
                await first.run("secret = 1\nopen('mine.txt', 'w').write('x')")
                cwd = (await first.run("import os; print(os.getcwd())")).stdout.strip()
                async with await sandbox.open_session() as second:
                    peek = await second.run(f"import csv, os\nprint('secret' in globals(), os.access({cwd!r} + '/mine.txt', os.R_OK))")
            return sandbox.layers, peek

    with caplog.at_level("WARNING"):
        layers, peek = loop.run_until_complete(go())
    assert layers["bwrap"] is False and layers["seccomp"] is False and layers["setuid"] is True
    assert peek.stdout == "False False\n", peek
    assert "bubblewrap is unavailable" in caplog.text and "seccomp disabled" in caplog.text


def test_cell_cpu_limit_raises_inside_the_cell_and_keeps_state(loop, sandbox):
    """Per-session limits travel in the open request (protocol level): a 1 s CPU budget per cell."""
    client = sandbox.workers[0].client
    limits = {**sandbox.limits, "cpu_s": 1}

    async def go():
        await client.open_session("cpu-limit-test", [], limits)
        try:
            await client.run("cpu-limit-test", "kept = 'yes'", 10)
            spin = await client.run("cpu-limit-test", "while True:\n    pass", 20)
            after = await client.run("cpu-limit-test", "print(kept)", 10)
        finally:
            await client.close_session("cpu-limit-test")
        return spin, after

    spin, after = loop.run_until_complete(go())
    assert spin.error_type == "CellCpuLimit" and not spin.timed_out, spin
    assert after.stdout == "yes\n"


def test_a_cell_gets_at_least_its_cpu_budget_whatever_the_session_used(tmp_path):
    """RLIMIT_CPU counts whole seconds of the process's total. With the usage so far rounded down, a session that had
    used 2.9 s gave a 1 s cell 0.1 s: the cell after a CPU-limited one could be stopped before printing (a CI flake
    of test_cell_cpu_limit_raises_inside_the_cell_and_keeps_state). Checked in a child, whose limits are its own."""
    probe = (
        "import resource, time\n"
        "from codedance_cli.sandbox.worker.lockdown import arm_cpu_limit\n"
        "def used():\n"
        "    u = resource.getrusage(resource.RUSAGE_SELF)\n"
        "    return u.ru_utime + u.ru_stime\n"
        "while used() % 1 < 0.8:\n"  # spin until the usage is just under a whole second
        "    pass\n"
        "arm_cpu_limit(1)\n"
        "print(resource.getrlimit(resource.RLIMIT_CPU)[0] - used())\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) >= 1.0, done.stdout
