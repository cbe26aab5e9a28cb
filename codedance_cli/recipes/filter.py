"""Recipe for `codedance filter` (owned by the data stage)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from codedance_cli.recipes.base import StageRecipe
from codedance_cli.recipes.common import DataRef, LoopConfig, ModelSpec, SandboxConfig


class FilterRecipe(StageRecipe):
    stage: Literal["filter"] = "filter"
    input: DataRef = Field(description="Trajectories (or tasks) to filter.")
    output: Path = Field(description="Where the kept trajectories go (parquet shards); a rerun resumes there.")
    report_dir: Path | None = Field(None, description="Where report.json and histogram.png go; default <output>/report.")
    dedup: bool = Field(True, description="Drop items whose images (by hash) and normalised question were already seen.")
    reexecute: bool = Field(True, description="Re-run every code step in the sandbox; drop trajectories whose code fails or gives different output.")
    allow_failed_steps: bool = Field(False, description="Keep trajectories in which a recorded code step failed (the model recovered later).")
    weak_model: ModelSpec | None = Field(None, description="The weak model sampled k times per item; none skips weak-to-strong filtering.")
    weak_mode: Literal["direct", "loop"] = Field("direct", description="direct: answer without tools in one reply; loop: through the code loop.")
    samples_per_item: int = Field(8, ge=1, description="k: weak-model samples per item.")
    weak_temperature: float = Field(1.0, ge=0.0, description="Sampling temperature of the weak model (k samples need diversity).")
    weak_max_new_tokens: int = Field(512, ge=1, description="Token budget of one direct weak answer (loop mode uses loop.max_new_tokens).")
    drop_trivial: bool = Field(True, description="Drop items the weak model answered correctly in all k samples.")
    hard_max_pass_rate: float = Field(0.25, ge=0.0, le=1.0, description="Weak pass rate up to this is difficulty 'hard'.")
    medium_max_pass_rate: float = Field(0.625, ge=0.0, le=1.0, description="Up to this (above hard) is 'medium'; above is 'easy'.")
    concurrency: int = Field(4, ge=1, description="Items processed at once (sandbox sessions and weak-model requests in flight).")
    loop: LoopConfig = Field(default_factory=LoopConfig, description="Tool-loop settings for weak-model sampling in loop mode.")
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig, description="Where code is re-executed.")
