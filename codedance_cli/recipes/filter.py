"""Recipe for `codedance filter` (owned by the data stage; extend freely)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from codedance_cli.recipes.base import StageRecipe
from codedance_cli.recipes.common import DataRef, LoopConfig, ModelSpec, SandboxConfig


class FilterRecipe(StageRecipe):
    stage: Literal["filter"] = "filter"
    input: DataRef = Field(description="Trajectories to filter.")
    output: Path = Field(description="Where the kept trajectories go.")
    weak_model: ModelSpec | None = Field(None, description="The weak model sampled k times per item; none skips weak-to-strong filtering.")
    samples_per_item: int = Field(8, description="k: weak-model samples per item.")
    loop: LoopConfig = Field(default_factory=LoopConfig, description="Tool-loop settings for weak-model sampling.")
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig, description="Where code is re-executed.")
