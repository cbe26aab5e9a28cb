"""Entry point: `python3 -I <this folder> [flags]` (bubblewrap, Docker) or `python -m codedance_cli.sandbox.worker`.

Run as a folder, Python puts the folder itself first on sys.path and runs this file as a plain script, so
relative imports would fail and the worker's modules would be importable by bare name from session code.
We take the folder back off sys.path and import it as a package under a private name instead.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable

PACKAGE = "sandbox_worker"  # the package's name when started as a folder (what session code could see)


def _main_from_folder() -> Callable[[], None]:
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0] or ".") == here:
        del sys.path[0]
    spec = importlib.util.spec_from_file_location(PACKAGE, os.path.join(here, "__init__.py"), submodule_search_locations=[here])
    assert spec is not None and spec.loader is not None
    package = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = package
    spec.loader.exec_module(package)
    return importlib.import_module(f"{PACKAGE}.loop").main


if __name__ == "__main__":
    if __package__:
        from .loop import main
    else:
        main = _main_from_folder()
    main()
