"""Isolated execution of model-written code: one interface, local and Docker backends."""

from codedance_cli.sandbox.base import InputImage, Sandbox, SandboxSession

__all__ = ["InputImage", "Sandbox", "SandboxSession"]
