"""The recipes that ship inside the package, addressed by name: `nano/sft` is `recipes/nano/sft.yaml`.

`codedance_cli/recipes_bundled` is a symlink to the repository's `recipes/` folder, installed as package data, so a
name means the same file in a checkout, an editable install and a wheel; commands then work from any folder.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

BUNDLED_DIR = (Path(__file__).parent.parent / "recipes_bundled").resolve()
SUFFIX = ".yaml"


def bundled_names() -> list[str]:
    """Every bundled recipe as `group/name` (no suffix), sorted."""
    if not BUNDLED_DIR.is_dir():
        return []
    return sorted(p.relative_to(BUNDLED_DIR).with_suffix("").as_posix() for p in BUNDLED_DIR.rglob(f"*{SUFFIX}"))


def normalize_name(name: str) -> str:
    """`nano/sft.yaml`, `nano/sft` and `recipes/nano/sft.yaml` all name `nano/sft`."""
    name = name.strip().replace("\\", "/").removeprefix("./").removeprefix("recipes/")
    return name.removesuffix(SUFFIX).removesuffix(".yml")


def bundled_path(name: str) -> Path | None:
    """The file of bundled recipe `name`, or None when there is none (never a file outside the bundle)."""
    key = normalize_name(name)
    if not key or key.startswith("/") or ".." in key.split("/"):
        return None
    path = BUNDLED_DIR / f"{key}{SUFFIX}"
    return path if path.is_file() else None


def bundled_name_of(path: Path) -> str | None:
    """The bundled name of `path` when it is one of the bundled files (e.g. a parent found through `extends:`)."""
    try:
        relative = path.resolve().relative_to(BUNDLED_DIR)
    except ValueError:
        return None
    return relative.with_suffix("").as_posix()


def suggest(name: str) -> str:
    """` (did you mean 'nano/sft'?)` for a misspelled name; a bare `sft` is matched against each group's names."""
    key = normalize_name(name)
    names = bundled_names()
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    if not close and "/" not in key:
        stems = difflib.get_close_matches(key, sorted({n.rsplit("/", 1)[-1] for n in names}), n=1, cutoff=0.6)
        close = [n for n in names if stems and n.rsplit("/", 1)[-1] == stems[0]]
    return f" (did you mean {' or '.join(repr(c) for c in close[:3])}?)" if close else ""


def unknown_recipe(name: str) -> str:
    """The one-line message for a name that is neither a file nor a bundled recipe."""
    return f"{name}: recipe file not found, and no bundled recipe has that name{suggest(name)}; `codedance recipe ls` lists them"


EXTENDS_LINE = re.compile(r"^extends:[ \t]*(?P<quote>[\"']?)(?P<value>[^\"'#\r\n]+?)(?P=quote)[ \t]*(?P<comment>#.*)?$", re.MULTILINE)


def portable_text(path: Path) -> tuple[str, str | None]:
    """The text of recipe `path` with a relative `extends:` rewritten to its bundled name (`base.yaml` -> `nano/base`).

    A copy then resolves its parent from any folder, the same file it did in the bundle. Comments and layout are kept;
    returns (text, the new extends value or None when nothing was rewritten).
    """
    text = path.read_text()
    match = EXTENDS_LINE.search(text)
    if match is None:
        return text, None
    value = match.group("value").strip()
    name = bundled_name_of(path.parent / value) if (path.parent / value).is_file() else None
    if name is None or name == normalize_name(value):
        return text, None
    start, end = match.span("value")
    quote = match.group("quote")
    if quote:
        start, end = start - 1, end + 1
    return text[:start] + name + text[end:], name
