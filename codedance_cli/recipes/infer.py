"""Recipe for `codedance infer`: one question against a model, with the tool loop and the sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from codedance_cli.recipes.base import StageRecipe
from codedance_cli.recipes.common import LoopConfig, ModelSpec, SandboxConfig


class InferRecipe(StageRecipe):
    stage: Literal["infer"] = "infer"
    model: ModelSpec = Field(description="The model to ask (--model overrides: an http(s) URL sets endpoint, anything else path).")
    loop: LoopConfig = Field(default_factory=LoopConfig, description="Tool-loop settings.")
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig, description="Where code runs.")
    output_dir: Path = Field(Path("artifacts/infer"), description="Images the code produced are saved under OUTPUT_DIR/<run id>/.")
