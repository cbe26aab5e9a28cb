"""Recipe for `codedance judge serve` (owned by the loop/judge work; extend freely)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from codedance_cli.recipes.base import StageRecipe


class JudgeRecipe(StageRecipe):
    stage: Literal["judge"] = "judge"
    model: str = Field(description="Model folder or hub id to serve.")
    served_name: str = Field("judge", description="--served-model-name; clients ask for this name.")
    engine: Literal["auto", "vllm", "transformers"] = Field("auto", description="auto: vllm when installed and a GPU is present, else transformers serve.")
    host: str = Field("127.0.0.1", description="Bind address.")
    port: int = Field(18901, description="Port.")
    tensor_parallel_size: int = Field(1, description="vLLM --tensor-parallel-size.")
    max_model_len: int = Field(32768, description="vLLM --max-model-len.")
    gpu_memory_utilization: float = Field(0.8, description="vLLM --gpu-memory-utilization.")
