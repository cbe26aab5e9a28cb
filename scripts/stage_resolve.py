"""Re-derive the bundles' pins: resolve vllm + verl against the device's packages and compare with stage_build.BUNDLES.

How: a throwaway Python 3.12 venv whose site-packages holds metadata-only stand-ins for every package the device has
(known versions where a reading exists, else '0+unread'), then `pip install --dry-run --report` of the roots. What
pip would install is what the device lacks. A device package that shows up anyway has a version requirement we
could not check here; the device-side probe checks it (`req` lines). Needs a python3.12 (PY312) and PyPI.
Usage: PY312=/path/to/python3.12 python3 scripts/stage_resolve.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pip._vendor.packaging.requirements import Requirement  # pip's own copy: packaging need not be installed
from stage_build import BUNDLES, norm, swift_pins
from stage_imports import DEVICE

DEVICE_ENV = {"python_version": "3.12", "python_full_version": "3.12.3", "implementation_name": "cpython",
              "platform_python_implementation": "CPython", "sys_platform": "linux", "platform_system": "Linux",
              "platform_machine": "x86_64", "os_name": "posix"}

ROOTS = ["vllm==0.24.0", "verl==0.9.1", "ray[default]==2.60.0", "transferqueue==0.1.11", "fastapi", "uvicorn",
         "qwen-vl-utils", "cachetools"]
# Read on the device (KINDS.md pip list, and the brief of issue 16); the rest are unread.
KNOWN = {"torch": "2.11.0+cu130", "torchvision": "0.26.0", "torchaudio": "2.11.0", "transformers": "5.17.0",
         "numpy": "2.5.2", "triton": "3.6.0", "accelerate": "1.15.0", "huggingface-hub": "1.33.0",
         "safetensors": "0.8.0", "sentencepiece": "0.2.2", "tiktoken": "0.14.0", "tokenizers": "0.23.2",
         "cupy-cuda13x": "14.2.0"}


def stand_ins(site: Path) -> None:
    for name in DEVICE:
        if norm(name) == "pip":
            continue  # the venv's own pip
        version = KNOWN.get(norm(name), "0+unread")
        info = site / f"{norm(name).replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True, exist_ok=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (info / "INSTALLER").write_text("stage_resolve\n")
        (info / "RECORD").write_text("")


def resolve(py312: str, work: Path) -> tuple[dict[str, str], dict[str, set[tuple[str, bool]]]]:
    """{name: version} that pip would install, and {name: {(requirer, through an extra)}} among them."""
    venv = work / "venv"
    subprocess.run([py312, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip"]
    subprocess.run([*pip, "install", "-q", "-U", "pip"], check=True)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    stand_ins(site)
    report = work / "report.json"
    wheels = Path(os.environ.get("STAGE_OUT", ".stage")) / "wheels"  # antlr4 is sdist-only: its built wheel, if any
    links = ["--find-links", str(wheels)] if wheels.is_dir() else []
    subprocess.run([*pip, "install", "-q", "--dry-run", "--prefer-binary", *links, "--report", str(report), *ROOTS], check=True)
    installs = json.loads(report.read_text())["install"]
    resolved = {norm(i["metadata"]["name"]): i["metadata"]["version"] for i in installs}
    needed_by: dict[str, set[tuple[str, bool]]] = {}
    for item in installs:
        for text in item["metadata"].get("requires_dist", []):
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({**DEVICE_ENV, "extra": ""}):
                via_extra = False
            elif "extra" in str(req.marker):
                via_extra = True
            else:
                continue  # another platform or Python
            needed_by.setdefault(norm(req.name), set()).add((norm(item["metadata"]["name"]), via_extra))
    return resolved, needed_by


def compare(resolved: dict[str, str], needed_by: dict[str, set[tuple[str, bool]]]) -> int:
    """Print, per resolved package, whether a bundle pins it, omits it on purpose, or the device has it; a package
    needed only by omitted ones, or only through an extra (fastapi[standard], ray[default]), counts as omitted."""
    pinned = {norm(s.split("==")[0]): s.split("==")[1] for b in BUNDLES.values() for s in b["wheels"] + b["sdists"]}
    omitted = {norm(n) for b in BUNDLES.values() for n, _ in b["omitted"]}
    device = {norm(d) for d in DEVICE}
    changed = True
    while changed:  # omitted also covers what only omitted packages, or extras, need
        changed = False
        for name in set(resolved) - set(pinned) - device - omitted:
            if all(extra or by in omitted for by, extra in needed_by.get(name, {("?", False)})):
                omitted.add(name)
                changed = True
    new, moved, on_device, left_out = [], [], [], []
    for name, version in sorted(resolved.items()):
        if name in pinned:
            if pinned[name] != version and swift_pins().get(name) != pinned[name]:
                moved.append(f"{name} pinned {pinned[name]}, resolves to {version}")
            elif pinned[name] != version:
                print(f"kept at gpu_wheels.sh's version: {name} {pinned[name]} (resolves to {version})")
        elif name in device:
            on_device.append(f"{name}{'' if KNOWN.get(name) else ' (version unread)'}")
        elif name in omitted:
            left_out.append(name)
        else:
            new.append(f"{name}=={version}")
    print(f"resolved {len(resolved)}; pinned and the same: {len(resolved) - len(new) - len(moved) - len(on_device) - len(left_out)}")
    print("device packages the roots constrain (the probe's `req` lines check them there):", ", ".join(on_device) or "none")
    print("not carried (stage_build.BUNDLES 'omitted', what only they need, extras):", ", ".join(left_out) or "none")
    for line in moved:
        print(f"version differs: {line}")
    for line in new:
        print(f"neither pinned nor omitted: {line}")
    return 1 if new or moved else 0


def main() -> int:
    py312 = os.environ.get("PY312", "python3.12")
    with tempfile.TemporaryDirectory(prefix="stage-resolve-") as tmp:
        try:
            resolved, needed_by = resolve(py312, Path(tmp))
        except (OSError, subprocess.CalledProcessError) as exc:
            print(f"error: {exc} (set PY312 to a Python 3.12 interpreter)", file=sys.stderr)
            return 2
    return compare(resolved, needed_by)


if __name__ == "__main__":
    sys.exit(main())
