"""Recipe for `codedance infer` (owned by the loop work; extend freely)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from codedance_cli.recipes.base import StageRecipe
from codedance_cli.recipes.common import LoopConfig, ModelSpec, SandboxConfig


class InferRecipe(StageRecipe):
    stage: Literal["infer"] = "infer"
    model: ModelSpec = Field(description="The model to ask.")
    loop: LoopConfig = Field(default_factory=LoopConfig, description="Tool-loop settings.")
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig, description="Where code runs.")
