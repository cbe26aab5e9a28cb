"""Recipe for `codedance rl` (owned by the RL stage; extend freely)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from codedance_cli.recipes.base import StageRecipe


class RlRecipe(StageRecipe):
    stage: Literal["rl"] = "rl"
    engine: Literal["verl", "swift"] = Field("verl", description="verl for clusters; swift (ms-swift GRPO) for one machine.")
    model: str = Field(description="The SFT checkpoint to start from.")
    dataset: Path = Field(description="RL items in the trajectory format.")
    output_dir: Path = Field(description="Where checkpoints go.")
