"""The benchmark registry: every module in this package contributes its `Benchmark` subclasses.

Adding a benchmark is adding one file here; nothing else needs to know about it.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from functools import cache
from typing import Any

from codedance_cli.errors import BadInput
from codedance_cli.eval.benchmarks.base import Benchmark

_HELPER_MODULES = {"base", "answers"}


@cache
def registry() -> dict[str, type[Benchmark]]:
    """name -> Benchmark class, found by importing each module of this package."""
    found: dict[str, type[Benchmark]] = {}
    for module_info in pkgutil.iter_modules(__path__):
        if module_info.name in _HELPER_MODULES or module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Benchmark) and cls.__module__ == module.__name__ and "name" in vars(cls):
                if cls.name in found:
                    raise RuntimeError(f"benchmark name {cls.name!r} registered twice ({module.__name__})")
                found[cls.name] = cls
    return dict(sorted(found.items()))


def get_benchmark(name: str, options: dict[str, Any] | None = None, *, source: str = "recipe") -> Benchmark:
    """An instance of the named benchmark, or BadInput with a did-you-mean."""
    import difflib

    known = registry()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise BadInput(f"{source}: benchmarks: unknown benchmark {name!r}{hint}; known: {', '.join(known)}")
    return known[name](options, source=source)


__all__ = ["Benchmark", "get_benchmark", "registry"]
