"""Walk a recipe schema's fields, for `codedance recipe check --explain` and `codedance eval --list`.

It lives in the recipes leaf (not in a command face) because two commands read it and leaves never import faces.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def describe_fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted name, type, description) for every field, nested sections expanded."""
    rows: list[tuple[str, str, str]] = []
    for name, field in model.model_fields.items():
        dotted = f"{prefix}{name}"
        nested = _section_model(field.annotation)
        if nested is not None:
            rows.append((dotted, nested.__name__, field.description or ""))
            rows.extend(describe_fields(nested, dotted + "."))
        else:
            rows.append((dotted, _type_name(field.annotation), field.description or ""))
    return rows


def _section_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    args = [a for a in getattr(annotation, "__args__", ()) if a is not type(None)]
    if len(args) == 1 and isinstance(args[0], type) and issubclass(args[0], BaseModel):
        return args[0]
    return None


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
