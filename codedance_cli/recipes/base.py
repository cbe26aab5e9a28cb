"""The pydantic base every recipe section derives from.

Unknown keys are rejected (a typo in a recipe must fail on the laptop, not on
the cluster), and every field is documented with `Field(description=...)` so
that `codedance recipe check --explain` can print it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RecipeModel(BaseModel):
    """Strict base: extra keys forbidden, defaults validated, assignment checked."""

    model_config = ConfigDict(extra="forbid", validate_default=True, validate_assignment=True)


class StageRecipe(RecipeModel):
    """Fields every stage recipe has; `stage` selects the schema."""

    stage: str = Field(description="Which command this recipe is for: synth, filter, sft, rl, judge, eval, infer.")
    description: str = Field("", description="Free text shown by `codedance recipe check`.")
