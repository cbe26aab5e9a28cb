"""Tracebacks the model and the viewer see name no host install folder (`codedance_cli.sandbox.trace_paths`)."""

from __future__ import annotations

import asyncio
import sys
import sysconfig
import time

import pytest

from codedance_cli.sandbox.protocol import observation_from_wire
from codedance_cli.sandbox.trace_paths import scrub_host_paths


@pytest.mark.parametrize(
    "text, expected",
    [
        ('File "/work/main/.venv/lib/python3.11/site-packages/numpy/_core/fromnumeric.py", line 299',
         'File "<python>/site-packages/numpy/_core/fromnumeric.py", line 299'),
        ('File "/root/.pyenv/versions/3.11.7/lib/python3.11/json/decoder.py", line 337',
         'File "<python>/lib/json/decoder.py", line 337'),
        ("/usr/lib/python3/dist-packages/PIL/Image.py:12: DeprecationWarning: x", "<python>/site-packages/PIL/Image.py:12: DeprecationWarning: x"),
        ("/usr/lib64/python3.12/os.py and /tmp/cell/out.png", "<python>/lib/os.py and /tmp/cell/out.png"),
        ("PYTHONPATH=/a/lib/python3.11/x:/b/site-packages/y", "PYTHONPATH=<python>/lib/x:<python>/site-packages/y"),
        ('File "<cell 1>", line 3, in <module>', 'File "<cell 1>", line 3, in <module>'),
        ("no paths at all", "no paths at all"),
    ],
)
def test_install_prefixes_become_neutral(text, expected):
    assert scrub_host_paths(text) == expected


def test_this_pythons_own_folders_are_scrubbed():
    for key in ("purelib", "platlib", "stdlib"):
        folder = sysconfig.get_paths()[key]
        assert sys.prefix not in scrub_host_paths(f'  File "{folder}/pkg/mod.py", line 1')


def test_hostile_text_costs_linear_time():
    start = time.monotonic()
    for text in ("/a" * 2_000_000, "/site-packages" * 300_000 + "/", "x/lib/python3.11" * 300_000 + "/"):
        scrub_host_paths(text)
    assert time.monotonic() - start < 5


def test_observation_from_wire_scrubs_error_and_stderr_not_stdout():
    payload = {
        "stdout": "/usr/lib/python3.11/os.py\n",  # what the code printed is the model's business
        "stderr": "/opt/venv/lib/python3.11/site-packages/numpy/x.py:3: RuntimeWarning: divide by zero\n",
        "error_type": "ValueError",
        "error": 'Traceback (most recent call last):\n  File "/opt/venv/lib/python3.11/site-packages/numpy/x.py", line 9\nValueError: bad',
    }
    observation = observation_from_wire(payload)
    assert observation.stdout == payload["stdout"]
    assert observation.stderr.startswith("<python>/site-packages/numpy/x.py:3:")
    assert '"<python>/site-packages/numpy/x.py", line 9' in observation.error and "/opt/venv" not in observation.error
    assert observation_from_wire({"error": None}).error is None


@pytest.mark.timeout(180)
def test_real_sandbox_traceback_names_no_host_folder():
    """A cell failing inside numpy and inside the standard library: the traceback keeps the module, not the prefix."""
    from codedance_cli.recipes.common import SandboxConfig
    from codedance_cli.sandbox import create_sandbox

    async def cells() -> list:
        async with create_sandbox(SandboxConfig(workers=1, timeout_s=20)) as sandbox:
            async with await sandbox.open_session([]) as session:
                return [await session.run("import numpy as np\nnp.reshape([1, 2, 3], (2, 2))"), await session.run("import json\njson.loads('{bad')")]

    numpy_error, json_error = asyncio.run(cells())
    assert numpy_error.error_type == "ValueError" and json_error.error_type == "JSONDecodeError"
    assert '"<python>/site-packages/numpy/' in numpy_error.error
    assert '"<python>/lib/json/decoder.py"' in json_error.error
    for error in (numpy_error.error, json_error.error):
        assert sys.prefix not in error and sys.base_prefix not in error and "/lib/python3" not in error
