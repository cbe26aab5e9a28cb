"""Stage large Python bundles onto an offline GPU machine, one carried part per call (device side, stdlib only).

The device can take at most 64 MiB of ignored files per call and keeps /tmp only while it stays warm (30 s between
calls), so a bundle (vLLM: ~200 MB compressed) travels as parts under .stage/ that each call copies into
$STAGE_ROOT/stage; once all parts of a bundle are there, `install` checks the whole archive and unpacks it into
$STAGE_ROOT/site (the folder gpu_lib.sh already puts on PYTHONPATH). Nothing here needs a network.

Commands (run from the repo root): receive | status | install BUNDLE | probe [BUNDLE...] | plan [BUNDLE...].
`stage_build.py` (this machine, with PyPI) makes the bundles; the pack/split/manifest code lives here so that tests
can build tiny bundles without pip.
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

MiB = 1 << 20
PART_SIZE = 60 * MiB  # a call carries 64 MiB in all, the working tree (~2 MB) included
CALL_LIMIT = 64 * MiB
SCRIPT = "bash scripts/gpu_vllm_stage.sh"


class StageError(Exception):
    """A refusal that is printed as one line (no traceback) with exit status 1."""


def src_dir() -> Path:
    """Where carried parts arrive: the same relative path as here, inside the laid-out working tree."""
    return Path(os.environ.get("STAGE_SRC", ".stage"))


def stage_dir() -> Path:
    return Path(os.environ.get("STAGE_ROOT", "/tmp")) / "stage"


def site_dir() -> Path:
    return Path(os.environ.get("STAGE_ROOT", "/tmp")) / "site"


def sha256_file(path: Path, chunk: int = 4 * MiB) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- pack (here)

def tar_site(site: Path, out: BinaryIO) -> None:
    """Deterministic tar (sorted names, zero times and owners) so a rebuild of the same wheels gives the same sha256."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(site.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=path.relative_to(site).as_posix())
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if info.isreg():
                with open(path, "rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)


def pack(site: Path, archive: Path, threads: int = 2) -> None:
    """tar | xz: LZMA2 preset 9 after the x86 branch filter (~5% smaller on the ELF binaries that dominate both
    bundles); the xz binary (at most `threads` threads) when present, else Python's lzma (one thread)."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    tmp = archive.with_name(archive.name + ".tmp")
    if shutil.which("xz"):
        with open(tmp, "wb") as out:
            proc = subprocess.Popen(["xz", "--x86", "--lzma2=preset=9", f"-T{threads}", "-c"], stdin=subprocess.PIPE, stdout=out)
            assert proc.stdin is not None
            tar_site(site, proc.stdin)
            proc.stdin.close()
            if proc.wait():
                raise StageError(f"xz failed with status {proc.returncode}")
    else:
        filters = [{"id": lzma.FILTER_X86}, {"id": lzma.FILTER_LZMA2, "preset": 9}]
        with lzma.open(tmp, "wb", filters=filters) as out:
            tar_site(site, out)  # type: ignore[arg-type]
    tmp.replace(archive)


def split(archive: Path, out_dir: Path, part_size: int = PART_SIZE) -> list[dict]:
    """Cut the archive into `<archive>.partNN` files of at most part_size bytes; returns name, size, sha256 of each."""
    parts = []
    for old in out_dir.glob(archive.name + ".part*"):
        old.unlink()
    with open(archive, "rb") as handle:
        index = 0
        while block := handle.read(part_size):
            part = out_dir / f"{archive.name}.part{index:02d}"
            part.write_bytes(block)
            parts.append({"name": part.name, "size": len(block), "sha256": hashlib.sha256(block).hexdigest()})
            index += 1
    return parts


def write_manifest(name: str, site: Path, out_dir: Path, part_size: int = PART_SIZE, **extra) -> dict:
    """Pack `site` into out_dir/<name>.tar.xz, split it, and write out_dir/<name>.manifest.json (what travels)."""
    archive = out_dir / f"{name}.tar.xz"
    pack(site, archive)
    parts = split(archive, out_dir, part_size)
    site_bytes = sum(p.stat().st_size for p in site.rglob("*") if p.is_file())
    manifest = {"bundle": name, "archive": archive.name, "size": archive.stat().st_size,
                "sha256": sha256_file(archive), "site_bytes": site_bytes, "parts": parts, **extra}
    (out_dir / f"{name}.manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


# ---------------------------------------------------------------- device side

def manifests() -> dict[str, dict]:
    """Manifests carried in this call (.stage/) or received earlier ($STAGE_ROOT/stage/), by bundle name."""
    found: dict[str, dict] = {}
    for folder in (stage_dir(), src_dir()):  # a freshly carried manifest wins
        for path in sorted(folder.glob("*.manifest.json")):
            data = json.loads(path.read_text())
            found[data["bundle"]] = data
    return found


def part_ok(path: Path, part: dict) -> bool:
    return path.is_file() and path.stat().st_size == part["size"] and sha256_file(path) == part["sha256"]


def receive() -> int:
    """Copy the parts this call carried into the stage folder, each checked against its manifest sha256."""
    stage = stage_dir()
    stage.mkdir(parents=True, exist_ok=True)
    found = manifests()
    if not found:
        raise StageError(f"no *.manifest.json under {src_dir()} or {stage}: carry .stage/BUNDLE.manifest.json")
    for path in src_dir().glob("*.manifest.json"):
        shutil.copyfile(path, stage / path.name)
    copied = skipped = 0
    for bundle in found.values():
        for part in bundle["parts"]:
            dest, carried = stage / part["name"], src_dir() / part["name"]
            if part_ok(dest, part):
                skipped += carried.exists()
                continue
            if not carried.exists():
                continue
            if not part_ok(carried, part):
                got = sha256_file(carried)[:12]
                raise StageError(f"{part['name']}: sha256 {got}… does not match the manifest's "
                                 f"{part['sha256'][:12]}… (size {carried.stat().st_size} vs {part['size']}): refused")
            tmp = dest.with_name(dest.name + ".tmp")
            shutil.copyfile(carried, tmp)
            tmp.replace(dest)
            copied += 1
            print(f"received {part['name']} ({part['size'] / MiB:.1f} MiB)")
    print(f"receive: {copied} copied, {skipped} already there")
    return 0


def bundle_state(bundle: dict) -> dict:
    stage = stage_dir()
    present, missing, bad = [], [], []
    for part in bundle["parts"]:
        path = stage / part["name"]
        (present if part_ok(path, part) else bad if path.exists() else missing).append(part["name"])
    marker = site_dir() / f".stage-{bundle['bundle']}.json"
    installed = marker.is_file() and json.loads(marker.read_text()).get("sha256") == bundle["sha256"]
    return {"present": present, "missing": missing, "bad": bad, "installed": installed}


def status() -> int:
    """One line per bundle, then one JSON line for scripts."""
    states = {name: bundle_state(bundle) for name, bundle in sorted(manifests().items())}
    for name, st in states.items():
        total = len(st["present"]) + len(st["missing"]) + len(st["bad"])
        line = f"{name}: {len(st['present'])}/{total} parts verified"
        if st["missing"]:
            line += f"; missing {' '.join(st['missing'])}"
        if st["bad"]:
            line += f"; corrupt {' '.join(st['bad'])}"
        print(line + ("; installed in " + str(site_dir()) if st["installed"] else "; not installed"))
    if not states:
        print(f"no manifests under {src_dir()} or {stage_dir()}")
    print(json.dumps({"stage": str(stage_dir()), "site": str(site_dir()), "bundles": states}))
    return 0


class PartsReader(io.RawIOBase):
    """The parts, read back to back as one file (nothing is joined on disk)."""

    def __init__(self, paths: Iterable[Path]):
        self.paths, self.handle = list(paths), None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while True:
            if self.handle is None:
                if not self.paths:
                    return 0
                self.handle = open(self.paths.pop(0), "rb")  # noqa: SIM115 (closed at its end, below)
            count = self.handle.readinto(buffer)
            if count:
                return count
            self.handle.close()
            self.handle = None


def install(name: str) -> int:
    """Check the whole archive, unpack it into the site folder once, then run the import probe."""
    bundle = manifests().get(name)
    if bundle is None:
        raise StageError(f"unknown bundle {name!r}: no {name}.manifest.json under {src_dir()} or {stage_dir()}")
    st = bundle_state(bundle)
    if st["missing"] or st["bad"]:
        raise StageError(f"{name}: cannot install, parts missing or corrupt: {' '.join(st['missing'] + st['bad'])}")
    site = site_dir()
    if not st["installed"]:
        paths = [stage_dir() / part["name"] for part in bundle["parts"]]
        digest = hashlib.sha256()
        with io.BufferedReader(PartsReader(paths), 4 * MiB) as reader:
            while block := reader.read(4 * MiB):
                digest.update(block)
        if digest.hexdigest() != bundle["sha256"]:
            raise StageError(f"{name}: the joined parts' sha256 {digest.hexdigest()[:12]}… is not the archive's "
                             f"{bundle['sha256'][:12]}…: refused")
        site.mkdir(parents=True, exist_ok=True)
        with io.BufferedReader(PartsReader(paths), 4 * MiB) as reader, tarfile.open(fileobj=reader, mode="r|xz") as tar:
            tar.extractall(site, filter="data")
        (site / f".stage-{name}.json").write_text(json.dumps({"bundle": name, "sha256": bundle["sha256"]}) + "\n")
        print(f"installed {name} into {site} ({bundle['site_bytes'] / MiB:.0f} MiB)")
    else:
        print(f"{name} already installed in {site}")
    return probe([name])


PROBE = r"""
import importlib, json, sys
from importlib import metadata
mods, omitted = json.loads(sys.argv[1]), set(json.loads(sys.argv[2]))
result, failed = {}, {}
for mod in mods:
    try:
        module = importlib.import_module(mod)
        result[mod] = str(getattr(module, "__version__", "ok"))
    except BaseException as exc:
        failed[mod] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
unmet = []
try:
    from packaging.requirements import Requirement
except ImportError:
    Requirement = None
for dist_name in json.loads(sys.argv[3]) if Requirement else []:
    try:
        requires = metadata.requires(dist_name) or []
    except metadata.PackageNotFoundError:
        continue
    for text in requires:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        key = req.name.lower().replace("_", "-")
        try:
            found = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            if key not in omitted:
                unmet.append(f"{dist_name} needs {req} (absent)")
            continue
        if req.specifier and not req.specifier.contains(found, prereleases=True):
            unmet.append(f"{dist_name} needs {req}, found {found}")
for mod, version in result.items():
    print(f"ok   {mod} {version}")
for mod, error in failed.items():
    print(f"FAIL {mod}: {error}")
for line in unmet:
    print(f"req  {line}")
print(json.dumps({"ok": result, "failed": failed, "unmet": unmet}))
sys.exit(1 if failed else 0)
"""


def probe(names: list[str] | None = None) -> int:
    """Import each bundle's probe modules in a fresh python3 with the site folder first on PYTHONPATH."""
    found = manifests()
    names = names or sorted(name for name, bundle in found.items() if bundle_state(bundle)["installed"])
    if not names:
        raise StageError("nothing installed to probe: run `install BUNDLE` first")
    mods, omitted, dists = [], [], []
    for name in names:
        if name not in found:
            raise StageError(f"unknown bundle {name!r}")
        mods += [m for m in found[name].get("probe", []) if m not in mods]
        omitted += [o["name"] for o in found[name].get("omitted", [])]
        dists += [p["name"] for p in found[name].get("packages", [])]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site_dir()), env.get("PYTHONPATH")]))
    python = os.environ.get("STAGE_PYTHON", sys.executable)
    args = [python, "-c", PROBE, json.dumps(mods), json.dumps(omitted), json.dumps(dists)]
    return subprocess.run(args, env=env, check=False).returncode


# ---------------------------------------------------------------- plan (here)

def tree_bytes() -> int:
    """What else travels with each call: the tracked and untracked-not-ignored files of this checkout."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return 0
    return sum(Path(p).stat().st_size for p in out.decode().split("\0") if p and Path(p).is_file())


def path_bytes(path: Path) -> int:
    """Bytes of a file, or of every file under a folder."""
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def plan(names: list[str] | None = None, limit: int = CALL_LIMIT, extras: list[str] | None = None) -> int:
    """Pack the parts (and extra carried paths, e.g. `.whl`) into as few calls as fit under the per-call limit,
    largest first; print each call's carry list and command."""
    found = {name: bundle for name, bundle in manifests().items() if not names or name in names}
    if names and (unknown := set(names) - set(found)):
        raise StageError(f"no manifest for {' '.join(sorted(unknown))} under {src_dir()}: run `build` first")
    missing = [extra for extra in extras or [] if not Path(extra).exists()]
    if missing:
        raise StageError(f"--with {missing[0]}: no such file or folder")
    room = limit - tree_bytes() - 64 * 1024
    items = [(part["size"], f"{src_dir()}/{part['name']}", name) for name, bundle in sorted(found.items())
             for part in bundle["parts"]]
    items += [(path_bytes(Path(extra)), extra, None) for extra in extras or []]
    calls: list[dict] = []
    for size, path, name in sorted(items, key=lambda item: -item[0]):
        if size > room:
            raise StageError(f"{path} ({size} B) leaves no room for the working tree: rebuild with a smaller PART_MIB")
        call = next((c for c in calls if c["bytes"] + size <= room), None)
        if call is None:
            calls.append(call := {"bytes": 0, "paths": [], "bundles": []})
        call["bytes"] += size
        call["paths"].append(path)
        if name is not None and name not in call["bundles"]:
            call["bundles"].append(name)
    last = {name: max(i for i, c in enumerate(calls) if name in c["bundles"]) for name in found}
    rows = []
    for index, call in enumerate(calls):
        carry = [f"{src_dir()}/{name}.manifest.json" for name in sorted(call["bundles"])] + sorted(call["paths"])
        command = " && ".join([f"{SCRIPT} receive"] + [f"{SCRIPT} install {name}" for name in sorted(found)
                                                          if last[name] == index])
        rows.append({"call": index + 1, "carry": carry, "command": command, "mib": round(call["bytes"] / MiB, 1)})
        print(f"call {index + 1} ({call['bytes'] / MiB:.1f} MiB): carry={json.dumps(carry)} command={command!r}")
    print(f"{len(calls)} calls, back to back (the device keeps /tmp only 30 s between calls); "
          f"`{SCRIPT} status` shows what arrived")
    print(json.dumps({"calls": rows}))
    return 0


def _plan_args(args: list[str]) -> int:
    """plan [BUNDLE...] [--with PATH]...: PATHs (e.g. .whl) travel in whichever call has room."""
    names, extras = [], []
    while args:
        head, *args = args
        if head == "--with":
            if not args:
                return _usage("--with needs a PATH")
            extra, *args = args
            extras.append(extra)
        else:
            names.append(head)
    return plan(names or None, extras=extras)


def main(argv: list[str]) -> int:
    commands = {"receive": lambda a: receive(), "status": lambda a: status(), "probe": lambda a: probe(a or None),
                "plan": _plan_args,
                "install": lambda a: install(a[0]) if len(a) == 1 else _usage("install takes one BUNDLE")}
    if not argv or argv[0] not in commands:
        return _usage(f"usage: {SCRIPT} build|receive|status|install BUNDLE|probe [BUNDLE...]|plan [BUNDLE...] [--with PATH]...")
    try:
        return commands[argv[0]](argv[1:])
    except StageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _usage(message: str) -> int:
    print(message, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
