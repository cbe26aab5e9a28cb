"""Recipe for `codedance eval` (owned by the eval stage)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from codedance_cli.recipes.base import RecipeModel, StageRecipe
from codedance_cli.recipes.common import LoopConfig, ModelSpec, SandboxConfig


class BenchmarkRef(RecipeModel):
    """One benchmark to run: which, where its files are, and its own options."""

    name: str = Field(description="Registered benchmark name (see `codedance eval --list`).")
    path: Path = Field(description="Local file or folder in the benchmark's public format (relative paths: from the working directory).")
    limit: int | None = Field(None, ge=1, description="Evaluate at most this many items (the first ones, in file order).")
    options: dict[str, Any] = Field(
        default_factory=dict, description="Benchmark-specific options, validated by the benchmark (see `codedance eval --list`)."
    )
    download: bool = Field(
        False, description="When `path` does not exist, download the benchmark's public files from the Hugging Face hub into it."
    )
    hub_id: str | None = Field(None, description="Hub dataset id to download from instead of the benchmark's default.")


class EvalJudge(RecipeModel):
    """An LLM judge for answers the rules cannot read (the official protocol of MathVista and HR-Bench uses one)."""

    endpoint: str = Field(description="Base URL of an OpenAI-compatible judge server (e.g. from `codedance judge serve`).")
    model: str = Field("judge", description="Served model name of the judge.")
    mode: Literal["unreadable", "wrong"] = Field(
        "unreadable",
        description="unreadable: ask the judge only when no answer could be extracted; wrong: also re-check rule-wrong answers.",
    )
    concurrency: int = Field(8, ge=1, description="Judge requests in flight.")


class EvalRecipe(StageRecipe):
    stage: Literal["eval"] = "eval"
    model: ModelSpec = Field(description="The model under evaluation (served endpoint or local folder).")
    benchmarks: list[BenchmarkRef] = Field(min_length=1, description="Benchmarks to run.")
    output_dir: Path = Field(
        description="Where samples.jsonl, results.json, report.md, plots/ and viewer.html go; a rerun resumes from samples.jsonl."
    )
    loop: LoopConfig = Field(
        default_factory=LoopConfig, description="Tool-loop settings: max_turns, temperature, top_p, concurrency, token budgets."
    )
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig, description="Where code runs.")
    mode: Literal["tool", "direct"] = Field(
        "tool", description="tool: through the code loop; direct: one answer without tools (the no-tool baseline)."
    )
    samples: int = Field(1, ge=1, description="Samples per item; with n > 1 (and temperature > 0) the answer is the majority vote.")
    judge: EvalJudge | None = Field(None, description="Optional LLM judge for answer extraction; rules only when unset.")
    viewer_limit: int = Field(400, ge=0, description="At most this many trajectories in viewer.html (wrong ones first); 0 = no viewer.")
