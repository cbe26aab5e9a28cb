"""scripts/stage_bundle.py end to end on a tiny fake bundle: pack, split, then receive/status/install/probe as the
device runs them (a subprocess per command, STAGE_ROOT pointing at a temp folder), with a corrupt and a missing part."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "scripts"))
import stage_bundle

PART = 700  # bytes: the fake archive is a few KB, so it splits into several parts


def fake_site(root: Path) -> Path:
    site = root / "site-src"
    (site / "stagedemo").mkdir(parents=True)
    (site / "stagedemo" / "__init__.py").write_text('__version__ = "1.2"\n')
    (site / "stagedemo" / "data.bin").write_bytes(os.urandom(3000))  # incompressible: the archive stays > 3 KB
    (site / "bin").mkdir()
    (site / "bin" / "stagedemo").write_text("#!/usr/bin/env python3\nimport stagedemo\n")
    (site / "bin" / "stagedemo").chmod(0o755)
    return site


@pytest.fixture
def staged(tmp_path: Path) -> dict:
    """A packed bundle 'demo' (and a 'bad' one whose probe module does not exist), laid out as a call carries them."""
    out = tmp_path / "built"
    out.mkdir()
    site = fake_site(tmp_path)
    demo = stage_bundle.write_manifest("demo", site, out, PART, probe=["stagedemo"],
                                       packages=[{"name": "stagedemo", "version": "1.2"}])
    bad = stage_bundle.write_manifest("bad", site, out, 10_000, probe=["stagedemo_absent"])
    env = {**os.environ, "STAGE_ROOT": str(tmp_path / "device"), "STAGE_SRC": str(tmp_path / "carried")}
    return {"out": out, "site": site, "demo": demo, "bad": bad, "env": env, "tmp": tmp_path}


def carry(staged: dict, *names: str) -> None:
    """What one device call finds under .stage/: the manifests and only the named parts."""
    carried = staged["tmp"] / "carried"
    shutil.rmtree(carried, ignore_errors=True)
    carried.mkdir()
    for path in staged["out"].glob("*.manifest.json"):
        shutil.copy(path, carried)
    for name in names:
        shutil.copy(staged["out"] / name, carried)


def run(staged: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "stage_bundle.py"), *args], env=staged["env"],
                          check=False, capture_output=True, text=True, timeout=120)


def status_json(staged: dict) -> dict:
    result = run(staged, "status")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])["bundles"]


def test_pack_is_reproducible_and_parts_rejoin(staged: dict) -> None:
    demo = staged["demo"]
    assert len(demo["parts"]) >= 3 and all(p["size"] <= PART for p in demo["parts"])
    joined = b"".join((staged["out"] / p["name"]).read_bytes() for p in demo["parts"])
    assert joined == (staged["out"] / "demo.tar.xz").read_bytes()
    again = stage_bundle.write_manifest("demo", staged["site"], staged["tmp"], PART, probe=["stagedemo"],
                                       packages=[{"name": "stagedemo", "version": "1.2"}])
    assert again["sha256"] == demo["sha256"]


def test_receive_status_install_across_calls(staged: dict) -> None:
    parts = [p["name"] for p in staged["demo"]["parts"]]
    carry(staged, parts[0])  # call 1
    assert run(staged, "receive").returncode == 0
    state = status_json(staged)["demo"]
    assert state["present"] == parts[:1] and state["missing"] == parts[1:] and not state["installed"]
    line = run(staged, "status").stdout.splitlines()[1]  # 'bad' sorts first
    assert line.startswith(f"demo: 1/{len(parts)} parts verified; missing ") and parts[-1] in line

    refused = run(staged, "install", "demo")
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1 and "missing" in refused.stderr

    carry(staged, *parts[1:])  # call 2; part 0 stays in the stage folder from call 1
    received = run(staged, "receive")
    assert received.returncode == 0 and f"{len(parts) - 1} copied" in received.stdout
    assert status_json(staged)["demo"]["missing"] == []
    assert "0 copied" in run(staged, "receive").stdout  # idempotent

    installed = run(staged, "install", "demo")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert "ok   stagedemo 1.2" in installed.stdout
    site = staged["tmp"] / "device" / "site"
    assert (site / "stagedemo" / "data.bin").read_bytes() == (staged["site"] / "stagedemo" / "data.bin").read_bytes()
    assert os.access(site / "bin" / "stagedemo", os.X_OK)
    assert status_json(staged)["demo"]["installed"]
    again = run(staged, "install", "demo")
    assert again.returncode == 0 and "already installed" in again.stdout


def test_corrupt_part_is_refused_in_one_line(staged: dict) -> None:
    part = staged["demo"]["parts"][1]["name"]
    carry(staged, part)
    carried = staged["tmp"] / "carried" / part
    data = bytearray(carried.read_bytes())
    data[10] ^= 0xFF
    carried.write_bytes(bytes(data))
    result = run(staged, "receive")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"error: {part}: sha256 ")
    assert "refused" in result.stderr and "Traceback" not in result.stderr
    assert not (staged["tmp"] / "device" / "stage" / part).exists()
    assert part in status_json(staged)["demo"]["missing"]


def test_whole_archive_checksum_guards_install(staged: dict) -> None:
    carry(staged, *[p["name"] for p in staged["demo"]["parts"]])
    manifest = staged["tmp"] / "carried" / "demo.manifest.json"
    data = json.loads(manifest.read_text())
    data["sha256"] = "0" * 64  # parts individually fine, but not the archive the manifest names
    manifest.write_text(json.dumps(data))
    assert run(staged, "receive").returncode == 0
    result = run(staged, "install", "demo")
    assert result.returncode == 1 and "joined parts" in result.stderr and result.stderr.count("\n") == 1
    assert not (staged["tmp"] / "device" / "site" / "stagedemo").exists()


def test_probe_reports_what_fails_to_import(staged: dict) -> None:
    carry(staged, *[p["name"] for p in staged["bad"]["parts"]])
    assert run(staged, "receive").returncode == 0
    result = run(staged, "install", "bad")
    assert result.returncode == 1
    assert "FAIL stagedemo_absent: ModuleNotFoundError" in result.stdout
    assert json.loads(result.stdout.strip().splitlines()[-1])["failed"]


def test_plan_packs_parts_into_calls(staged: dict, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("STAGE_SRC", str(staged["out"]))
    monkeypatch.setenv("STAGE_ROOT", str(staged["tmp"] / "device"))
    monkeypatch.chdir(staged["tmp"])  # not a git checkout: no working tree counted
    limit = 64 * 1024 + 2 * PART + 10  # two demo parts per call
    assert stage_bundle.plan(["demo"], limit=limit) == 0
    calls = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["calls"]
    parts = [p["name"] for p in staged["demo"]["parts"]]
    assert len(calls) == (len(parts) + 1) // 2
    assert all(call["carry"][0].endswith("demo.manifest.json") for call in calls)
    assert [Path(c).name for call in calls for c in call["carry"][1:]] == parts
    assert calls[-1]["command"].endswith("install demo") and "install" not in calls[0]["command"]
    assert stage_bundle.main(["plan", "nosuch"]) == 1
    wheels = staged["tmp"] / "wheels"
    wheels.mkdir()
    (wheels / "a.whl").write_bytes(b"w" * PART)
    assert stage_bundle.main(["plan", "demo", "--with", str(wheels)]) == 0
    with_wheels = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["calls"]
    carried = [c for call in with_wheels for c in call["carry"]]
    assert str(wheels) in carried and sum(len(call["carry"]) for call in with_wheels) == len(carried)
    assert sum(call["mib"] for call in with_wheels) >= sum(call["mib"] for call in calls)
    assert stage_bundle.main(["plan", "demo", "--with", "no/such/folder"]) == 1


def test_import_check_sees_a_lazy_module_loaded_by_a_class_annotation(tmp_path: Path) -> None:
    """vLLM 0.24's structured-output module loads llguidance at import through a dataclass annotation."""
    from stage_imports import check

    site = tmp_path / "site"
    (site / "pkg").mkdir(parents=True)
    (site / "pkg" / "__init__.py").write_text("")
    (site / "pkg" / "eager.py").write_text(
        "from dataclasses import dataclass\nfrom typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import guided\nelse:\n    guided = LazyLoader('guided', globals(), 'guided')\n"
        "@dataclass\nclass Grammar:\n    matcher: guided.Matcher\n"
    )
    (site / "pkg" / "deferred.py").write_text(
        "from __future__ import annotations\nguided = LazyLoader('guided', globals(), 'guided')\n"
        "class Grammar:\n    matcher: guided.Matcher\n"
    )
    (site / "pkg" / "used_later.py").write_text("guided = LazyLoader('guided', globals(), 'guided')\ndef f():\n    return guided.Matcher\n")
    assert check(site, ["pkg.eager"]) == {"guided": ["pkg.eager"]}
    assert check(site, ["pkg.deferred", "pkg.used_later"]) == {}
