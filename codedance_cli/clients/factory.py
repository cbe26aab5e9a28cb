"""Pick and build the client a recipe's ModelSpec asks for."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from codedance_cli.clients.base import ModelClient
from codedance_cli.errors import BadInput
from codedance_cli.recipes.common import ModelSpec


def vllm_importable() -> bool:
    return importlib.util.find_spec("vllm") is not None


def gpu_present() -> bool:
    """An NVIDIA GPU is visible (checked without importing torch)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return Path("/dev/nvidiactl").exists() or Path("/proc/driver/nvidia/gpus").is_dir()


def resolve_backend(spec: ModelSpec) -> str:
    """auto: endpoint if set, else vllm if importable and a GPU is present, else transformers."""
    if spec.backend != "auto":
        return spec.backend
    if spec.endpoint:
        return "openai"
    if vllm_importable() and gpu_present():
        return "vllm"
    return "transformers"


def create_client(spec: ModelSpec, *, concurrency: int = 64) -> ModelClient:
    """The ModelClient for `spec`; `concurrency` bounds HTTP requests in flight."""
    backend = resolve_backend(spec)
    if backend == "openai":
        if not spec.endpoint:
            raise BadInput("model.endpoint: required for backend 'openai' (e.g. http://127.0.0.1:8000/v1)")
        from codedance_cli.clients.openai_http import OpenAIClient

        return OpenAIClient.from_spec(spec, concurrency=concurrency)
    if not spec.path:
        raise BadInput(f"model.path: required for backend {backend!r} (a local model folder or hub id)")
    warn_pixel_budget(spec)
    if backend == "vllm" and spec.vllm.batching == "continuous":
        from codedance_cli.clients.vllm_async import VLLMAsyncClient

        return VLLMAsyncClient.from_spec(spec)
    if backend == "vllm":
        from codedance_cli.clients.vllm_offline import VLLMClient

        return VLLMClient.from_spec(spec)
    from codedance_cli.clients.transformers_local import TransformersClient

    return TransformersClient.from_spec(spec)


def warn_pixel_budget(spec: ModelSpec) -> None:
    """Say so on stderr when the recipe asks for more pixels per image than the checkpoint was trained at."""
    from codedance_cli.models.pixel_budget import check_pixel_budget

    if spec.path and (warning := check_pixel_budget(spec.path, spec.max_pixels)) is not None:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
