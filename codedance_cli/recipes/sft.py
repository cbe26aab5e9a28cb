"""Recipe for `codedance sft` (owned by the SFT stage; extend freely)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from codedance_cli.recipes.base import StageRecipe


class SftRecipe(StageRecipe):
    stage: Literal["sft"] = "sft"
    model: str = Field(description="Model folder or hub id to fine-tune.")
    dataset: Path = Field(description="Training data in the trajectory format (exported to ms-swift jsonl before training).")
    output_dir: Path = Field(description="Where checkpoints go.")
    train_type: Literal["full", "lora"] = Field("full", description="Full fine-tuning or LoRA.")
