"""Model fields that name a local folder: resolve them, and say plainly when the folder is missing.

A recipe's model is a local folder or a Hugging Face hub id. Without this, a missing folder such as
`artifacts/nano/sft/last` reaches transformers or ms-swift as a "repo id" and fails deep inside with a hub validation
message; here it is one line naming the recipe and the field, before anything starts.

A relative folder is looked up in the working directory first (where every other relative path of a recipe lives:
datasets, output_dir), then in the recipe file's folder (a model kept beside its recipe); a folder found only there
is rewritten to its absolute path. A hub id is `org/name` (one slash, starting with a letter or digit) that does not
exist locally; anything else that does not exist is a missing folder.
"""

from __future__ import annotations

import re
from pathlib import Path

from codedance_cli.recipes.base import StageRecipe
from codedance_cli.recipes.common import ModelSpec

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def is_hub_id(value: str) -> bool:
    """`Qwen/Qwen2.5-VL-7B-Instruct` yes; `./models/x`, `../x`, `/x`, `~/x`, `.cache/x`, `artifacts/a/b` no."""
    return HUB_ID.match(value) is not None


def model_fields(recipe: StageRecipe) -> list[tuple[str, str]]:
    """(dotted field, value) of every model a stage loads from a folder or the hub (not served endpoints)."""
    fields: list[tuple[str, str]] = []
    for name in type(recipe).model_fields:
        value = getattr(recipe, name)
        if name == "model" and isinstance(value, str):
            fields.append((name, value))
        elif isinstance(value, ModelSpec) and value.path and not (value.endpoint and value.backend in ("auto", "openai")):
            fields.append((f"{name}.path", value.path))
    return fields


def locate(value: str, recipe_dir: Path) -> Path | None:
    """The folder `value` names, from the working directory, else from the recipe's folder; None if neither has it."""
    path = Path(value).expanduser()
    if path.exists():
        return path
    beside = recipe_dir / path
    if not path.is_absolute() and beside.exists():
        return beside.resolve()
    return None


def resolve_model_paths(recipe: StageRecipe, recipe_dir: Path) -> StageRecipe:
    """`recipe` with each model folder found only beside the recipe file made absolute (the rest unchanged)."""
    for field, value in model_fields(recipe):
        found = locate(value, recipe_dir)
        if found is None or found == Path(value).expanduser():
            continue
        name, _, sub = field.partition(".")
        current = getattr(recipe, name)
        new = current.model_copy(update={sub: str(found)}) if sub else str(found)
        recipe = recipe.model_copy(update={name: new})
    return recipe


def missing_model_folders(recipe: StageRecipe, source: str) -> list[str]:
    """One message per model field that names a local folder which does not exist (`source`: the recipe as given)."""
    return [f"model folder not found: {value} (from {source} field {field})"
            for field, value in model_fields(recipe) if not Path(value).expanduser().exists() and not is_hub_id(value)]
