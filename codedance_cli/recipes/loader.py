"""Read a YAML recipe: `extends:` chains, `--set a.b=c` overrides, strict validation.

Every failure is a `BadInput` whose one-line message names the file and the
dotted field, with a did-you-mean hint for misspelled keys.

A recipe is a file, or else the name of a bundled one (`nano/sft`, see bundled.py). `extends:` is looked up
relative to the recipe's folder first, then as a bundled name (`extends: nano/base`), so a bundled recipe copied
elsewhere by `codedance recipe cp` (which rewrites its relative `extends:` to the bundled name) keeps working.
"""

from __future__ import annotations

import difflib
import importlib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from codedance_cli.errors import BadInput
from codedance_cli.recipes.base import StageRecipe
from codedance_cli.recipes.bundled import bundled_path, suggest, unknown_recipe
from codedance_cli.recipes.model_paths import resolve_model_paths

# stage name -> "module:Class"; imported lazily so `codedance --help` stays fast.
STAGE_SCHEMAS: dict[str, str] = {
    "synth": "codedance_cli.recipes.synth:SynthRecipe",
    "filter": "codedance_cli.recipes.filter:FilterRecipe",
    "sft": "codedance_cli.recipes.sft:SftRecipe",
    "rl": "codedance_cli.recipes.rl:RlRecipe",
    "judge": "codedance_cli.recipes.judge:JudgeRecipe",
    "eval": "codedance_cli.recipes.eval:EvalRecipe",
    "infer": "codedance_cli.recipes.infer:InferRecipe",
}


def schema_for(stage: str) -> type[StageRecipe]:
    """The pydantic class for a stage name."""
    target = STAGE_SCHEMAS.get(stage)
    if target is None:
        raise BadInput(f"unknown stage {stage!r}{_hint(stage, STAGE_SCHEMAS)}; expected one of {', '.join(STAGE_SCHEMAS)}")
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)


def find_recipe(recipe: Path | str) -> Path:
    """The file `recipe` names: an existing file, else the bundled recipe of that name; BadInput with a hint otherwise."""
    path = Path(recipe).expanduser()
    if path.is_file():
        return path
    found = bundled_path(str(recipe))
    if found is not None:
        return found
    if path.is_dir():
        raise BadInput(f"{path}: is a folder, not a recipe file")
    raise BadInput(unknown_recipe(str(recipe)))


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse one YAML file into a mapping, with the file and line in any error."""
    if not path.is_file():
        raise BadInput(f"{path}: recipe file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise BadInput(f"{path}{where}: invalid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BadInput(f"{path}: a recipe must be a mapping at the top level, got {type(data).__name__}")
    return data


PATH_SHORTHAND_KEYS = frozenset({"model"})  # sections where a plain string means {path: string} (ModelSpec)


def merged_value(key: str, old: Any, new: Any) -> Any:
    """`new` over `old`: mappings merge key by key; a path string over a model section keeps the section's other settings.

    So `model: artifacts/x` (or `--set model=artifacts/x`) over a base recipe's `model: {device: cpu, dtype: float32}`
    changes only where the model comes from.
    """
    if isinstance(new, dict) and isinstance(old, dict):
        return deep_merge(old, new)
    if isinstance(new, str) and isinstance(old, dict) and key in PATH_SHORTHAND_KEYS:
        return {**old, "path": new}
    return new


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; anything else in `override` replaces `base` (see merged_value)."""
    merged = dict(base)
    for key, value in override.items():
        merged[key] = merged_value(key, merged.get(key), value)
    return merged


def resolve_extends(path: Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Load `path` with its `extends:` parents merged underneath it (see find_parent)."""
    path = path.resolve()
    if path in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, path))
        raise BadInput(f"{path}: extends cycle: {chain}")
    data = read_yaml(path)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise BadInput(f"{path}: field 'extends': must be a path string")
    return deep_merge(resolve_extends(find_parent(path, parent), (*_seen, path)), data)


def find_parent(path: Path, parent: str) -> Path:
    """`extends: parent` of the recipe at `path`: relative to its folder, else a bundled name such as `nano/base`."""
    relative = (path.parent / Path(parent).expanduser()).resolve()
    if relative.is_file():
        return relative
    bundled = bundled_path(parent)
    if bundled is not None:
        return bundled.resolve()
    raise BadInput(f"{path}: field 'extends': {parent} not found (looked at {relative} and among the bundled recipes){suggest(parent)}")


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b.c=value` strings; values are parsed as YAML so `lr=1e-5` is a float.

    A number indexes into a list (`benchmarks.0.limit=16`): lists of benchmarks or datasets are common, and
    rewriting a whole list to change one field of one entry is error-prone.
    """
    result = dict(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise BadInput(f"--set {item!r}: expected KEY=VALUE, e.g. --set train.learning_rate=1e-5")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        _set_path(result, key.strip().split("."), value, item)
    return result


def _set_path(root: dict[str, Any], parts: list[str], value: Any, item: str) -> None:
    """Set root[parts...] = value, copying every dict and list on the way (the parsed recipe is never mutated)."""
    node: Any = root
    for depth, part in enumerate(parts):
        slot: str | int = part
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                where = ".".join(parts[:depth])
                indices = f"; index it with 0..{len(node) - 1}" if node else ""
                raise BadInput(f"--set {item!r}: {where} is a list of {len(node)}{indices}")
            slot = int(part)
        if depth == len(parts) - 1:
            old = node[slot] if isinstance(slot, int) else node.get(slot)
            node[slot] = merged_value(part, old, value) if isinstance(value, str) else value
            return
        child = node[slot] if isinstance(slot, int) else node.get(slot)
        child = dict(child) if isinstance(child, dict) else list(child) if isinstance(child, list) else {}
        node[slot] = child
        node = child


def load_recipe(path: Path | str, overrides: list[str] | None = None, expect_stage: str | None = None) -> StageRecipe:
    """The validated recipe object for `path` (a file or a bundled name), after extends and overrides."""
    path = find_recipe(path)
    data = apply_overrides(resolve_extends(path), overrides or [])
    stage = data.get("stage")
    if stage is None:
        raise BadInput(f"{path}: field 'stage': missing (one of {', '.join(STAGE_SCHEMAS)})")
    if expect_stage is not None and stage != expect_stage:
        raise BadInput(f"{path}: field 'stage': this is a {stage!r} recipe, but `codedance {expect_stage}` needs a {expect_stage!r} recipe")
    schema = schema_for(str(stage))
    try:
        recipe = schema.model_validate(data)
    except ValidationError as exc:
        raise BadInput(format_validation_error(path, schema, exc)) from None
    return resolve_model_paths(recipe, path.parent)


def format_validation_error(path: Path, schema: type[BaseModel], exc: ValidationError) -> str:
    """One line: the file, the first bad field, what is wrong, and a hint; plus a count of the rest.

    Unknown keys come first: a misspelled required key (`modle:`) also makes `model` missing, and the typo with its
    did-you-mean is what the user must fix, in a file just as through `--set`.
    """
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    loc = tuple(first["loc"])
    dotted = ".".join(str(p) for p in loc)
    if first["type"] == "extra_forbidden":
        allowed = allowed_fields(schema, loc[:-1]) + (["extends"] if len(loc) == 1 else [])
        meant = _closest(str(loc[-1]), allowed)
        message = f"{path}: unknown field '{dotted}'" + (f" (did you mean '{meant}'?)" if meant else "")
        errors = [e for e in errors if not (e["type"] == "missing" and tuple(e["loc"]) == (*loc[:-1], meant))]
    elif first["type"] == "missing":
        message = f"{path}: field '{dotted}': required but missing"
    else:
        message = f"{path}: field '{dotted}': {first['msg']} (got {first.get('input')!r})"
    if len(errors) > 1:
        message += f" [+{len(errors) - 1} more error(s)]"
    return message


def allowed_fields(schema: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model found by walking `loc` from `schema` (for did-you-mean)."""
    model: Any = schema
    for part in loc:
        if isinstance(part, int) or not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        model = _model_in(field.annotation)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _model_in(annotation: Any) -> Any:
    """The first BaseModel class inside an annotation such as `X | None` or `list[X]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _closest(name: str, candidates: Any) -> str | None:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return close[0] if close else None


def _hint(name: str, candidates: Any) -> str:
    meant = _closest(name, candidates)
    return f" (did you mean '{meant}'?)" if meant else ""
