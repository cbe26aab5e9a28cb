"""Is an exported file still current? (Exports are skipped when newer than every file of their source.)"""

from __future__ import annotations

from pathlib import Path


def is_fresh(output: Path, source: Path) -> bool:
    return output.exists() and output.stat().st_mtime >= max((p.stat().st_mtime for p in [source, *source.rglob("*")]), default=0)
