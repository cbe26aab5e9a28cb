"""Recipe for `codedance synth` (owned by the data stage)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from codedance_cli.recipes.base import RecipeModel, StageRecipe
from codedance_cli.recipes.common import DataRef, LoopConfig, ModelSpec, SandboxConfig

TeacherTemplate = Literal["auto", "visual_operations", "math_computation", "open_ended"]


class JudgeRef(RecipeModel):
    """An OpenAI-compatible judge endpoint (e.g. `codedance judge serve`), used where rule matching cannot decide."""

    endpoint: str = Field(description="Base URL, e.g. http://127.0.0.1:18901/v1.")
    model: str = Field("judge", description="Served model name of the judge.")
    concurrency: int = Field(8, description="Judge requests in flight at once.")


class SynthRecipe(StageRecipe):
    stage: Literal["synth"] = "synth"
    generator: Literal["procedural", "teacher"] = Field(
        "procedural", description="procedural: no model, correct by construction; teacher: a served model through the tool loop."
    )
    output: Path = Field(description="Where the kept trajectories (parquet shards) are written; a rerun resumes there.")
    num_items: int = Field(100, ge=1, description="How many items to generate (procedural items 0..n-1 of the seed's stream).")
    seed: int = Field(0, description="Seed; the same seed gives the same items. Use another seed for held-out eval sets.")
    families: list[str] | None = Field(
        None, description="Procedural task families (counting, visual_search, charts, geometry); none = all, in turn."
    )
    teacher: ModelSpec | None = Field(None, description="The teacher model (generator: teacher), usually an OpenAI-compatible endpoint.")
    input: DataRef | None = Field(
        None, description="Teacher synthesis: items to solve (trajectory format; turns are ignored). None = procedural tasks."
    )
    teacher_template: TeacherTemplate = Field(
        "auto",
        description="CodeDance family whose instruction is added to the teacher's question: predefined visual operations, "
        "mathematical computation or open-ended operations; auto picks per item from its metadata.",
    )
    samples_per_item: int = Field(1, ge=1, description="Teacher attempts per item; every attempt that passes verification is kept.")
    require_code: bool = Field(True, description="Teacher synthesis: drop trajectories that answer without running any code.")
    judge: JudgeRef | None = Field(None, description="Judge fallback for answers that rule matching rejects (open/text answers).")
    rejected_output: Path | None = Field(None, description="Also write rejected teacher trajectories here (with the reason), for inspection.")
    concurrency: int = Field(4, ge=1, description="Procedural items verified in the sandbox at once.")
    loop: LoopConfig = Field(default_factory=LoopConfig, description="Tool-loop settings (prompt_version also sets the procedural turn format).")
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig, description="Where code steps run.")
