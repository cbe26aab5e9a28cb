"""Recipe for `codedance eval` (owned by the eval stage; extend freely)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from codedance_cli.recipes.base import RecipeModel, StageRecipe
from codedance_cli.recipes.common import LoopConfig, ModelSpec, SandboxConfig


class BenchmarkRef(RecipeModel):
    name: str = Field(description="Registered benchmark name (see `codedance eval --list`).")
    path: Path = Field(description="Local file or folder in the benchmark's public format.")
    limit: int | None = Field(None, description="Evaluate at most this many samples.")


class EvalRecipe(StageRecipe):
    stage: Literal["eval"] = "eval"
    model: ModelSpec = Field(description="The model under evaluation.")
    benchmarks: list[BenchmarkRef] = Field(description="Benchmarks to run.")
    output_dir: Path = Field(description="Where per-sample JSONL, results.json, report.md, plots and the viewer go.")
    loop: LoopConfig = Field(default_factory=LoopConfig, description="Tool-loop settings.")
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig, description="Where code runs.")
    mode: Literal["tool", "direct"] = Field("tool", description="tool: through the code loop; direct: answer without tools (baseline).")
