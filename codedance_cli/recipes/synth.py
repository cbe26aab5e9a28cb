"""Recipe for `codedance synth` (owned by the data stage; extend freely)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from codedance_cli.recipes.base import StageRecipe
from codedance_cli.recipes.common import LoopConfig, ModelSpec, SandboxConfig


class SynthRecipe(StageRecipe):
    stage: Literal["synth"] = "synth"
    generator: Literal["procedural", "teacher"] = Field("procedural", description="procedural: no model, correct by construction; teacher: a served model through the tool loop.")
    output: Path = Field(description="Where the trajectories (parquet shards) are written.")
    num_items: int = Field(100, description="How many items to generate.")
    seed: int = Field(0, description="Seed; the same seed gives the same items.")
    teacher: ModelSpec | None = Field(None, description="The teacher model (generator: teacher).")
    loop: LoopConfig = Field(default_factory=LoopConfig, description="Tool-loop settings for teacher synthesis.")
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig, description="Where code steps run.")
