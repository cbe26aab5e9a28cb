"""Static check of a built bundle: which unconditional imports, reachable from its entry modules, nothing provides.

We cannot import vLLM here (CUDA build, no GPU), so after pruning `stage_build.py` walks the module-level imports
(not those inside functions, `try`, `if` or TYPE_CHECKING blocks) from the bundle's entry modules through the site
tree, and reports each top-level name that is neither in the tree, nor the standard library, nor on the device.
Usage: python3 scripts/stage_imports.py SITE ENTRY[,ENTRY...]
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

# The device's python3 packages (KINDS.md, read 2026-11-17), as distribution names.
DEVICE = """absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core cuda-pathfinder
cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock flatbuffers flax
fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize
hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2
joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown
markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch
mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti
nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver
nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13
nvidia-nvtx onnx onnx-ir onnxruntime onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx optimistix
orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy portalocker prometheus-client propcache
protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions pytest
pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex
requests rich sacrebleu safetensors scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece
sentence-transformers setuptools shellingham simplejson six sortedcontainers statsmodels sympy tabulate tensorboard
tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz torch torchaudio
torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope triton typer typing-extensions
typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp""".split()  # noqa: SIM905
IMPORT_NAMES = {"PIL": "pillow", "yaml": "pyyaml", "cv2": "opencv-python-headless", "cpuinfo": "py-cpuinfo",
                "grpc": "grpcio", "google": "protobuf", "absl": "absl-py", "dateutil": "python-dateutil",
                "attr": "attrs", "pynvml": "nvidia-ml-py", "cuda": "cuda-bindings", "nvidia": "torch",
                "markdown_it": "markdown-it-py", "pkg_resources": "setuptools", "_distutils_hack": "setuptools",
                "sklearn": "scikit-learn", "skimage": "scikit-image", "hf_xet": "hf-xet", "cupy": "cupy-cuda13x",
                "opencv": "opencv-python-headless"}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def on_device(top: str) -> bool:
    return norm(IMPORT_NAMES.get(top, top)) in {norm(d) for d in DEVICE} or norm(top) in {"cuda-bindings"}


def module_file(site: Path, module: str) -> Path | None:
    base = site / module.replace(".", "/")
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def unconditional_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports that run whenever the module is imported: module level, outside try/if/functions."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.append(node)
            elif isinstance(node, ast.ClassDef):
                visit(node.body)
            elif isinstance(node, ast.With):
                if "suppress" not in ast.unparse(node):  # `with suppress(ImportError):` is a guard
                    visit(node.body)
            elif isinstance(node, (ast.For, ast.While)):
                visit(node.body)

    visit(tree.body)
    return found


def lazy_loads_at_import(tree: ast.Module) -> list[str]:
    """Modules a `LazyLoader` (vLLM's, TensorFlow's) loads while this module is imported, not when it is used.

    `name = LazyLoader("name", globals(), "module")` defers the import to the first attribute access; a class body's
    annotation `field: name.Type` is such an access at import time, unless `from __future__ import annotations` makes
    annotations strings. vLLM 0.24's structured-output module does exactly this with llguidance.
    """
    if any(isinstance(node, ast.ImportFrom) and node.module == "__future__" and any(a.name == "annotations" for a in node.names)
           for node in tree.body):
        return []
    lazy: dict[str, str] = {}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name)
                and node.value.func.id == "LazyLoader" and len(node.value.args) >= 3
                and isinstance(node.value.args[2], ast.Constant) and isinstance(node.targets[0], ast.Name)):
            lazy[node.targets[0].id] = str(node.value.args[2].value)
    loaded: list[str] = []
    for cls in (node for node in tree.body if isinstance(node, ast.ClassDef)):
        for field in (item for item in cls.body if isinstance(item, ast.AnnAssign)):
            for part in ast.walk(field.annotation):
                if isinstance(part, ast.Attribute) and isinstance(part.value, ast.Name) and part.value.id in lazy:
                    loaded.append(lazy[part.value.id])
    return sorted(set(loaded))


def check(site: Path, entries: list[str]) -> dict[str, list[str]]:
    """{top-level name nothing provides: [importing modules]}; a name ending in '?' is a bundle module (pruned?)."""
    own = {p.name.split(".")[0] for p in site.iterdir() if not p.name.endswith("-info")}
    stdlib = set(sys.stdlib_module_names) | {"__main__"}
    seen: set = set()  # found modules, and (absent module, imported-as-module) pairs
    queue: list[tuple[str, str]] = [(e, "(entry)") for e in entries]  # (module, who imports it as a module)
    missing: dict[str, list[str]] = {}
    while queue:
        module, importer = queue.pop()
        if module in seen or (module, bool(importer)) in seen:
            continue
        parts = module.split(".")
        path = module_file(site, module)
        if path is None and (site / module.replace(".", "/")).is_dir():
            seen.add(module)  # a namespace package: nothing to parse
            continue
        if path is None:
            seen.add((module, bool(importer)))
            native = list(site.glob(module.replace(".", "/") + ".*so"))
            if importer and not native:  # imported as a module, and neither source nor extension is there
                missing.setdefault(module + "?", []).append(importer)
            continue
        seen.add(module)
        queue += [(".".join(parts[:i]), "") for i in range(1, len(parts))]
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
        except SyntaxError:
            continue
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        lazy = [ast.Import(names=[ast.alias(name=name)]) for name in lazy_loads_at_import(tree)]
        for node in [*unconditional_imports(tree), *lazy]:
            if isinstance(node, ast.Import):
                names = [(alias.name, module) for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                names = [(base, module)] + [(f"{base}.{alias.name}", "") for alias in node.names]
            for name, importer_ in names:
                top = name.split(".")[0]
                if top in own:
                    queue.append((name, importer_))
                elif top and top not in stdlib and not on_device(top):
                    missing.setdefault(top, []).append(module)
    return missing


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    missing = check(Path(argv[0]), argv[1].split(","))
    for name, users in sorted(missing.items()):
        print(f"unprovided import {name} <- {', '.join(sorted(set(users))[:3])}")
    print(f"{len(missing)} unprovided unconditional import(s)")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
