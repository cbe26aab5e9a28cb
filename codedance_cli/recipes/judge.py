"""Recipe for `codedance judge serve`: which model to serve, with which engine, where."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from codedance_cli.recipes.base import StageRecipe


class JudgeRecipe(StageRecipe):
    stage: Literal["judge"] = "judge"
    model: str = Field(description="Model folder or hub id to serve.")
    served_name: str = Field("judge", description="--served-model-name for vLLM; clients ask for this name (transformers serve answers to the model path).")
    engine: Literal["auto", "vllm", "transformers"] = Field("auto", description="auto: vllm when installed and a GPU is present, else transformers serve.")
    host: str = Field("127.0.0.1", description="Bind address.")
    port: int = Field(18901, ge=1, le=65535, description="Port.")
    tensor_parallel_size: int = Field(1, ge=1, description="vLLM --tensor-parallel-size.")
    max_model_len: int = Field(32768, ge=1, description="vLLM --max-model-len.")
    gpu_memory_utilization: float = Field(0.8, gt=0, le=1, description="vLLM --gpu-memory-utilization.")
    dtype: str = Field("auto", description="--dtype for either engine (auto, bfloat16, float16, float32).")
    device: str = Field("auto", description="transformers serve --device (auto, cpu, cuda:0).")
    startup_timeout_s: float = Field(900.0, gt=0, description="How long to wait for /v1/models to answer before giving up.")
    extra_args: list[str] = Field(default_factory=list, description="Extra command-line arguments appended to the engine's command.")
