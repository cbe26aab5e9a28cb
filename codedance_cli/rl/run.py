"""The `codedance rl` stage: recipe -> run folder (data + engine configs) -> engine launch -> `output_dir/last`.

Read top to bottom: the engine comes from a table (engines/swift: ms-swift GRPO on one machine; engines/verl:
verl at scale); the data is checked before anything is written; a run that already reached its last step is
not trained past it; the newest trained model becomes `output_dir/last`.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from codedance_cli.engines.rl_engine import RlEngine
from codedance_cli.engines.rl_files import RunFiles
from codedance_cli.engines.swift.grpo_engine import SwiftGrpo
from codedance_cli.engines.verl.engine import VerlGrpo
from codedance_cli.recipes.rl import RlRecipe

ENGINES: dict[str, type[RlEngine]] = {"swift": SwiftGrpo, "verl": VerlGrpo}


@dataclass
class RlPlan:
    """What `codedance rl` runs: the engine, the command, the environment it adds, the run folder."""

    engine: RlEngine
    command: list[str]
    env: dict[str, str]
    files: RunFiles

    def describe(self) -> str:
        env = "\n".join(f"{key}={shlex.quote(value)}" for key, value in sorted(self.env.items()))
        return f"# engine: {self.engine.name}\n# environment:\n{env}\n# command:\n{shlex.join(self.command)}"


def plan(recipe: RlRecipe, *, dry_run: bool = False) -> RlPlan:
    """The engine command and environment for `recipe` (pure: writes nothing)."""
    engine = ENGINES[recipe.engine]()
    engine.check(recipe)
    files = RunFiles(recipe.output_dir)
    command, env = engine.command(recipe, files, dry_run=dry_run)
    return RlPlan(engine, command, env, files)


def check_datasets(recipe: RlRecipe) -> None:
    from codedance_cli.data.sources import check_dataref
    from codedance_cli.recipes.common import DataRef

    check_dataref(DataRef(path=Path(recipe.dataset)), "dataset")
    if recipe.val_dataset is not None:
        check_dataref(DataRef(path=Path(recipe.val_dataset)), "val_dataset")


def run(recipe: RlRecipe, *, dry_run: bool = False) -> RlPlan:
    """`codedance rl RECIPE`: prepare the run folder and launch the engine (or only print the plan)."""
    run_plan = plan(recipe, dry_run=dry_run)
    if dry_run:
        print(run_plan.describe())
        return run_plan
    engine, files = run_plan.engine, run_plan.files
    if engine.already_done(recipe, files):
        print(f"{files.checkpoints}: already trained to max_steps={recipe.train.max_steps}; nothing to do")
    else:
        check_datasets(recipe)
        engine.prepare(recipe, files)
        engine.train(run_plan.command, run_plan.env, files)
    last = engine.finalize(files)
    if last is not None:
        print(f"trained model: {last} -> {last.resolve()}")
    for line in engine.report(files):
        print(line)
    return run_plan
