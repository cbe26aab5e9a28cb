"""Isolated execution of model-written code: one interface, local and Docker backends."""

from __future__ import annotations

from codedance_cli.recipes.common import SandboxConfig
from codedance_cli.sandbox.base import InputImage, Sandbox, SandboxSession


def create_sandbox(config: SandboxConfig | None = None) -> Sandbox:
    """The backend named by `config.backend`; workers start lazily on the first session."""
    config = config or SandboxConfig()
    if config.backend == "docker":
        from codedance_cli.sandbox.docker_backend import DockerSandbox

        return DockerSandbox(config)
    from codedance_cli.sandbox.local import LocalSandbox

    return LocalSandbox(config)


__all__ = ["InputImage", "Sandbox", "SandboxConfig", "SandboxSession", "create_sandbox"]
