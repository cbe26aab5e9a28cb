"""The `codedance judge serve` stage: start the server, report where it is, stop it on Ctrl-C."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from codedance_cli.console import make_console
from codedance_cli.errors import BadInput, EngineFailed
from codedance_cli.judge.server import ServeCommand, ServedModel, build_serve_command
from codedance_cli.recipes.judge import JudgeRecipe


def command_for(recipe: JudgeRecipe) -> ServeCommand:
    """The engine command for the recipe; a local-looking model path must exist."""
    if recipe.model.startswith((".", "/", "~")) and not Path(recipe.model).expanduser().exists():
        raise BadInput(f"field 'model': {recipe.model} does not exist (build it, or name a hub id)")
    return build_serve_command(
        str(Path(recipe.model).expanduser()) if recipe.model.startswith("~") else recipe.model,
        engine=recipe.engine,
        served_name=recipe.served_name,
        host=recipe.host,
        port=recipe.port,
        tensor_parallel_size=recipe.tensor_parallel_size,
        max_model_len=recipe.max_model_len,
        gpu_memory_utilization=recipe.gpu_memory_utilization,
        dtype=recipe.dtype,
        device=recipe.device,
        extra_args=recipe.extra_args,
    )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(recipe: JudgeRecipe, *, dry_run: bool = False) -> None:
    """Serve until SIGINT/SIGTERM (then stop the child and exit 0); exports go to stdout."""
    console = make_console(stderr=True)
    command = command_for(recipe)
    if dry_run:
        print(command.shell())
        print(f"# engine={command.engine} base_url={command.base_url} served_name={command.served_name}")
        return
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    server = ServedModel(command, startup_timeout_s=recipe.startup_timeout_s)
    try:
        with console.status(f"starting {command.engine} serve {recipe.model} on {command.base_url} ..."):
            server.start()
        print(f"export CODEDANCE_JUDGE_URL={command.base_url}", flush=True)
        print(f"export CODEDANCE_JUDGE_MODEL={command.served_name}", flush=True)
        console.print(f"[green]serving[/] {command.served_name} at {command.base_url} (log {server.log_path}); Ctrl-C stops it")
        while server.running:
            time.sleep(0.5)
        raise EngineFailed(f"{command.engine} server exited with code {server.process.returncode}: {server.log_tail()}")
    except KeyboardInterrupt:
        console.print("stopping ...")
    finally:
        code = server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if code is not None:
            console.print(f"stopped {command.engine} server (exit {code})")
