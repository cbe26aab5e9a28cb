"""Launch a model behind an OpenAI-compatible API: `vllm serve` on a GPU, else `transformers serve`.

Used by `codedance judge serve` and by any stage that needs a local folder
served (eval, synth). The child runs in its own process group so stopping it
stops everything it spawned; readiness is `GET /health` (or `/v1/models`) answering 200.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from codedance_cli.clients.factory import gpu_present, vllm_importable
from codedance_cli.errors import BadInput, EngineFailed


@dataclass
class ServeCommand:
    """Exactly what will run, and where clients will find it."""

    engine: str
    argv: list[str]
    env: dict[str, str]
    host: str
    port: int
    served_name: str

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "localhost") else self.host
        return f"http://{host}:{self.port}/v1"

    def shell(self) -> str:
        prefix = " ".join(f"{key}={shlex.quote(value)}" for key, value in self.env.items())
        return (prefix + " " if prefix else "") + shlex.join(self.argv)


def _executable(name: str) -> str:
    """The console script next to this interpreter (the venv's), else on PATH, else the bare name."""
    sibling = Path(sys.executable).with_name(name)
    if sibling.exists():
        return str(sibling)
    return shutil.which(name) or name


def _vllm_launcher() -> list[str]:
    """`vllm`'s console script, or this Python running vLLM's CLI module when the script is missing.

    The script can be gone while the package imports: a `pip install --target` into the same folder replaces its
    `bin/` (seen on the GPU machine, where vLLM is unpacked under /tmp/site beside other wheels).
    """
    script = _executable("vllm")
    if Path(script).is_file() or not vllm_importable():
        return [script]
    return [sys.executable, "-m", "vllm.entrypoints.cli.main"]


def choose_engine(engine: str) -> str:
    """auto: vLLM when importable and a GPU is present, else transformers serve."""
    if engine != "auto":
        return engine
    return "vllm" if vllm_importable() and gpu_present() else "transformers"


def build_serve_command(
    model: str,
    *,
    engine: str = "auto",
    served_name: str = "judge",
    host: str = "127.0.0.1",
    port: int = 18901,
    tensor_parallel_size: int = 1,
    max_model_len: int | None = 32768,
    gpu_memory_utilization: float = 0.8,
    dtype: str = "auto",
    device: str = "auto",
    extra_args: list[str] | None = None,
) -> ServeCommand:
    """The command line for serving `model` with the chosen engine.

    `transformers serve` has no --served-model-name: it answers to the model
    string it was started with, so that string is the served name it reports.
    """
    engine = choose_engine(engine)
    if Path(model).exists():
        model = str(Path(model).resolve())  # the server's working directory must not matter
    if engine == "vllm":
        argv = [*_vllm_launcher(), "serve", model, "--host", host, "--port", str(port), "--served-model-name", served_name]
        argv += ["--tensor-parallel-size", str(tensor_parallel_size), "--gpu-memory-utilization", str(gpu_memory_utilization)]
        argv += ["--dtype", dtype]
        if max_model_len:
            argv += ["--max-model-len", str(max_model_len)]
        name = served_name
    elif engine == "transformers":
        argv = [_executable("transformers"), "serve", model, "--host", host, "--port", str(port), "--dtype", dtype, "--device", device]
        argv += ["--log-level", "warning"]
        name = model
    else:
        raise BadInput(f"engine {engine!r}: expected auto, vllm or transformers")
    env = {"HF_HUB_OFFLINE": "1"} if Path(model).exists() else {}
    return ServeCommand(engine=engine, argv=argv + list(extra_args or []), env=env, host=host, port=port, served_name=name)


def endpoint_ready(base_url: str, timeout_s: float = 2.0) -> bool:
    """`GET /health` (vLLM and transformers serve) or `GET /v1/models` answers 200.

    transformers serve's /v1/models lists the hub cache and fails where there is
    none, so /health comes first.
    """
    root = base_url.removesuffix("/v1")
    for url in (root + "/health", base_url + "/models"):
        try:
            if httpx.get(url, timeout=timeout_s).status_code == 200:
                return True
        except httpx.HTTPError:
            continue
    return False


@dataclass
class ServedModel:
    """A running server child: `start()` waits for health, `stop()` ends its whole process group."""

    command: ServeCommand
    startup_timeout_s: float = 600.0
    log_path: Path | None = None
    process: subprocess.Popen | None = field(default=None, init=False)

    def start(self) -> ServedModel:
        if endpoint_ready(self.command.base_url, timeout_s=1.0):
            raise EngineFailed(f"{self.command.base_url} already answers; port {self.command.port} is taken (set port: in the recipe)")
        if self.log_path is None:
            handle, name = tempfile.mkstemp(prefix=f"codedance-serve-{self.command.port}-", suffix=".log")
            os.close(handle)
            self.log_path = Path(name)
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                self.command.argv,
                env={**os.environ, **self.command.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except FileNotFoundError:
            raise EngineFailed(f"{self.command.argv[0]}: not found; install the engine (pip install 'transformers[serving]' or vllm)") from None
        finally:
            log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise EngineFailed(f"{self.command.engine} server exited with code {self.process.returncode}: {self.log_tail()}")
            if endpoint_ready(self.command.base_url):
                return
            time.sleep(0.5)
        self.stop()
        raise EngineFailed(f"{self.command.engine} server not ready after {self.startup_timeout_s:.0f}s: {self.log_tail()}")

    def log_tail(self, lines: int = 5) -> str:
        if self.log_path is None or not self.log_path.is_file():
            return "(no log)"
        text = self.log_path.read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:]) or "(empty log)"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, grace_s: float = 15.0) -> int | None:
        """SIGTERM the process group, SIGKILL after `grace_s`; the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> ServedModel:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
