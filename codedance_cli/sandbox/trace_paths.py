"""Host paths out of tracebacks: `/work/.venv/lib/python3.11/site-packages/numpy/x.py` -> `<python>/site-packages/numpy/x.py`.

Why: the sandbox Python's install folder differs between the local backend (the host venv), the Docker image and
the release's machines. A traceback that names it tells the model where the host keeps its files, and makes the same
error read differently per machine, so the model would be trained and evaluated on text it cannot use. Only the
install prefix goes; the package path after it (which module raised) stays, because that is what helps.

Pure and dependency-free on purpose: the orchestrator calls it where an observation is built from a worker's reply,
and anything else (the worker itself, a viewer of old trajectories) can import it without the rest of codedance_cli.
"""

from __future__ import annotations

import re

PYTHON = "<python>"
# The end of an install prefix: a site-/dist-packages folder, or the standard library's lib/pythonX.Y (with the
# site-packages under it, when there is one). Found first, then the path is walked back to its start, so the cost
# stays linear whatever the text (a regex that matched the whole path from its root backtracks on many slashes).
_ANCHOR = re.compile(r"/(?:lib(?:64)?/python\d+(?:\.\d+)?(?P<site>/(?:site|dist)-packages)?|(?P<bare>(?:site|dist)-packages))(?=/)")
# Characters a path in a traceback or warning does not contain: what stands before its root.
_NOT_PATH = frozenset(" \t\r\n\"'`<>()[]{},;:=")


def scrub_host_paths(text: str) -> str:
    """`text` with every Python install prefix replaced: `...site-packages` or `...dist-packages` ->
    `<python>/site-packages`, the standard library folder `.../lib/python3.X` -> `<python>/lib`. Other paths stay."""
    if "/" not in text:
        return text
    out: list[str] = []
    done = 0  # text[:done] is already in `out`
    for match in _ANCHOR.finditer(text):
        start = match.start()
        while start > done and text[start - 1] not in _NOT_PATH:
            start -= 1
        out.append(text[done:start])
        out.append(PYTHON + ("/site-packages" if match.group("site") or match.group("bare") else "/lib"))
        done = match.end()
    out.append(text[done:])
    return "".join(out)
