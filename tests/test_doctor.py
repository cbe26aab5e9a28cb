"""`codedance doctor` runs on any machine and its --json is machine-readable."""

from __future__ import annotations

import json

from conftest import run_codedance


def test_doctor_json_lists_every_component() -> None:
    result = run_codedance("doctor", "--json")
    assert result.returncode == 0, result.stderr
    checks = json.loads(result.stdout)
    by_name = {c["name"]: c for c in checks}
    for name in ("python", "torch", "cuda", "transformers", "ms-swift", "verl", "vllm", "docker engine", "bwrap"):
        assert name in by_name, f"doctor does not report {name}"
    assert by_name["python"]["found"] is True
    assert by_name["torch"]["found"] is True and by_name["torch"]["detail"][0].isdigit()
    assert all(set(c) == {"name", "found", "detail", "needed_for"} for c in checks)



def test_seccomp_row_builds_the_workers_filter() -> None:
    """pyseccomp is a dependency: on every install the row must say what the sandbox really gets."""
    by_name = {c["name"]: c for c in json.loads(run_codedance("doctor", "--json").stdout)}
    assert by_name["seccomp"]["found"] is True, by_name["seccomp"]
    assert "filter built" in by_name["seccomp"]["detail"]
