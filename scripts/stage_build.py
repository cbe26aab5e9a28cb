"""Build the verl and vLLM bundles for the offline GPU device (this machine, with PyPI): pinned wheels → one site
tree per bundle → pruned → tar.xz → parts ≤ 60 MiB + manifest under .stage/ (see stage_bundle.py for the device side).

Why pins and not a resolver run: the device already has torch 2.11, transformers 5.17, numpy 2.5 and ~190 other
packages (KINDS.md); the lists below are what `pip install --dry-run --report` resolved for vllm==0.24.0 and
verl==0.9.1 in a Python 3.12 venv holding stand-ins for those packages, minus what we checked (by reading the source)
is never imported for a dense model served on Hopper. `scripts/stage_resolve.py` redoes that resolution and diffs it
with these pins; `scripts/stage_imports.py` re-checks the imports after each build.
Usage: python3 scripts/stage_build.py [BUNDLE...]   (env: STAGE_OUT=.stage, PART_MIB=60, PYV=3.12)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stage_bundle import MiB, StageError, write_manifest
from stage_imports import check

PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_26_x86_64", "manylinux_2_24_x86_64",
             "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64", "any"]

# Shared by both bundles (each bundle is self-contained, so verl can be staged alone); the versions match
# scripts/gpu_wheels.sh where both name a package, since all of them land in the same /tmp/site.
WEB = ["fastapi==0.136.3",  # vllm 0.24 needs >=0.133,<0.137; 0.165+ imports opentelemetry at the top
       "starlette==1.10.0", "uvicorn==0.55.0", "pydantic==2.14.4", "pydantic-core==2.50.5", "annotated-types==0.8.0",
       "typing-inspection==0.4.5", "pyzmq==27.3.0", "msgspec==0.23.0", "cachetools==8.0.2",
       "jsonschema==4.26.0", "jsonschema-specifications==2025.9.1", "referencing==0.37.0", "rpds-py==2026.9.1"]

BUNDLES: dict[str, dict] = {
    "verl": {
        "wheels": ["verl==0.9.1", "ray==2.60.0", "transferqueue==0.1.11",  # transfer_queue: verl's default use_v1 trainer
                   "hydra-core==1.3.8", "omegaconf==2.3.1", "codetiming==1.4.0", "datasets==4.8.4", "dill==0.4.1",
                   "multiprocess==0.70.19", "tensordict==0.10.0", "pyvers==0.1.0", "orjson==3.13.0",
                   "torchdata==0.11.0", "pylatexenc==2.11", "qwen-vl-utils==0.0.14", *WEB],
        "sdists": ["antlr4-python3-runtime==4.9.3"],  # hydra/omegaconf's parser; PyPI has no wheel
        "prune": [
            ("ray/jars", "Java workers; verl starts Python actors only"),
            ("ray/rllib", "ray.rllib: never imported by verl or ray core"),
            ("ray/data", "ray.data: never imported by verl (its datasets are torch/HF ones)"),
            ("ray/serve", "ray.serve: not used; verl serves rollouts through its own uvicorn apps"),
            ("ray/tune", "ray.tune: not used"),
            ("ray/train", "ray.train: not used; verl places its own workers"),
            ("ray/llm", "ray.llm: not used (and it wants vllm 0.29)"),
            ("ray/dashboard/client/build", "the dashboard's web pages (JS); the agent that ray.init starts stays"),
            ("scripts", "top-level folder from the verl/transferqueue wheels; would shadow the project's scripts/"),
            ("tests", "top-level folder from the verl/transferqueue wheels; would shadow the project's tests/"),
            ("recipe", "top-level examples from the transferqueue wheel"),
            ("tutorial", "top-level examples from the transferqueue wheel"),
        ],
        "omitted": [
            ("transformers", "device has 5.17.0; verl pins <5.11 but has no runtime check (see docs/gpu-staging.md)"),
            ("wandb", "imported only when trainer.logger has wandb (verl/utils/tracking.py)"),
            ("aiohttp-cors", "ray[default] extra: dashboard server only"),
            ("colorful", "ray[default] extra: CLI colours"),
            ("opencensus", "ray[default] extra: dashboard metrics export"),
            ("opentelemetry-sdk", "ray[default] extra: metrics export"),
            ("opentelemetry-exporter-prometheus", "ray[default] extra: metrics export"),
            ("opentelemetry-proto", "ray[default] extra: metrics export"),
            ("py-spy", "ray[default] extra: stack dumps from the dashboard"),
            ("smart-open", "ray[default] extra: remote runtime_env URIs"),
            ("virtualenv", "ray[default] extra: pip runtime_env; verl passes env_vars only"),
            ("av", "qwen-vl-utils reads videos with it, lazily; we feed images"),
            ("importlib-metadata", "declared by tensordict 0.10, which never imports it"),
            ("tensorboard", "device has it"),
        ],
        "probe": ["verl", "ray", "hydra", "omegaconf", "tensordict", "datasets", "torchdata", "codetiming", "orjson",
                  "pydantic", "fastapi", "uvicorn", "transfer_queue", "qwen_vl_utils", "verl.trainer.main_ppo",
                  "verl.workers.engine_workers", "verl.experimental.agent_loop.tool_agent_loop"],
        "entries": ["verl.trainer.main_ppo", "verl.workers.engine_workers", "verl.trainer.ppo.ray_trainer",
                    "verl.experimental.agent_loop.tool_agent_loop", "verl.workers.rollout.replica",
                    "ray", "ray.util.placement_group", "transfer_queue"],
    },
    "vllm": {
        "wheels": ["vllm==0.24.0", "blake3==1.0.11", "cbor2==6.3.0", "depyf==0.20.0", "astor==0.8.1",
                   "diskcache==5.6.3", "partial-json-parser==0.2.1.1.post7", "pybase64==1.5.1",
                   "setproctitle==1.3.8", "python-json-logger==4.2.0", "ijson==3.6.0", "openai==3.57.0",
                   "httpx2==2.16.2", "httpcore2==2.16.2", "truststore==0.10.5", "jiter==0.19.0", "sniffio==1.3.1",
                   "distro==1.9.0", "openai-harmony==0.0.8", "prometheus-fastapi-instrumentator==8.1.0",
                   "model-hosting-container-standards==0.1.16", "jmespath==1.1.0", "supervisor==4.3.0",
                   "watchfiles==1.3.0", "python-multipart==0.0.34", "compressed-tensors==0.17.0", "loguru==0.7.3",
                   "lark==1.2.2",
                   # The structured-output backends load at import: backend_guidance.py and backend_xgrammar.py read
                   # llguidance.LLMatcher / xgr.GrammarMatcher in dataclass annotations, which makes their LazyLoader
                   # import the package, and the engine core and GPU model runner import both modules (found on the
                   # device: AsyncLLM failed with "No module named 'llguidance'"). vllm pins llguidance>=1.7,<1.8,
                   # which our package index lacks; 1.6.1 has the same LLMatcher and LLTokenizer names.
                   "llguidance==1.6.1", "xgrammar==0.2.1", "apache-tvm-ffi==0.1.15.post2", *WEB],
        "sdists": [],
        "prune": [
            ("vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so", ("FlashAttention 2: on SM90 fa_utils.get_flash_attn_version "
             "picks FA3 (_vllm_fa3_C, kept); FA2 is only the ALiBi/batch-invariant fallback; its import is guarded")),
            ("vllm/vllm_flash_attn/cute", ("FlashAttention 4 (CuTe DSL) needs nvidia-cutlass-dsl, not carried; "
             "without this folder FA4_AVAILABLE is False instead of failing at first use")),
            ("vllm/_moe_C_stable_libtorch.abi3.so", ("fused-MoE kernels; platforms/cuda.py imports them in a try "
             "and only MoE layers call torch.ops._moe_C")),
            ("vllm/third_party/deep_gemm", ("FP8 block GEMM (JIT, headers + a .so per CPython); only used when "
             "has_deep_gemm() and an FP8 model")),
            ("vllm/third_party/fmha_sm100", "Blackwell (SM100) sparse attention, imported lazily by MiniMax-M3 only"),
            ("vllm/vllm-rs", "Rust API frontend, used only with VLLM_USE_RUST_FRONTEND=1 (envs.py)"),
            ("xgrammar/lib", "xgrammar's static C++ archive (62 MiB), for building against it; Python loads the bindings .so"),
        ],
        "omitted": [
            ("torch", "device has 2.11.0, the version vllm pins"), ("torchaudio", "device has 2.11.0"),
            ("torchvision", "device has 0.26.0"), ("transformers", "device has 5.17.0 (vllm wants >=5.5.3)"),
            ("tokenizers", "device has it"), ("numba", "device has it; vllm pins ==0.65.0 (probe says which)"),
            ("setuptools", "device has it (vllm wants <81)"),
            ("flashinfer-python", "FLASHINFER attention/sampler: second choice on SM90, imports are guarded"),
            ("flashinfer-cubin", "FlashInfer's prebuilt kernels (447 MB)"),
            ("nvidia-cutlass-dsl", "CuTe DSL: FA4 and Blackwell kernels"),
            ("quack-kernels", "CuTe DSL kernels for Blackwell/mamba"), ("tilelang", "TileLang kernels (FP8/MLA)"),
            ("tokenspeed-mla", "MLA on Blackwell"),
            ("humming-kernels", "quantized GEMM kernels"), ("fastsafetensors", "opt-in loader (guarded import)"),
            ("nvidia-cudnn-frontend", "flashinfer's cuDNN path"),
            ("outlines-core", "structured outputs (the third backend; xgrammar and llguidance are carried)"),
            ("lm-format-enforcer", "structured outputs"),
            ("mistral-common", "Mistral tokenizer/tool parser only"), ("anthropic", "/v1/messages endpoint only"),
            ("mcp", "--tool-server only"), ("av", "audio input only (video uses OpenCV)"),
            ("opentelemetry-sdk", "--otlp-traces-endpoint only (vllm/tracing, guarded)"),
            ("opentelemetry-api", "tracing only"), ("opentelemetry-exporter-otlp", "tracing only"),
            ("opentelemetry-semantic-conventions-ai", "tracing only"),
        ],
        "probe": ["vllm", "vllm._C_stable_libtorch", "vllm.vllm_flash_attn", "vllm.v1.engine.async_llm",
                  "vllm.v1.worker.gpu_model_runner", "vllm.v1.attention.backends.flash_attn",
                  "vllm.v1.attention.backends.triton_attn", "vllm.entrypoints.openai.api_server",
                  "vllm.model_executor.models.qwen2_5_vl"],
        "entries": ["vllm.entrypoints.openai.api_server", "vllm.entrypoints.cli.main", "vllm.entrypoints.llm",
                    "vllm.v1.engine.async_llm", "vllm.v1.engine.core", "vllm.v1.worker.gpu_worker",
                    "vllm.v1.worker.gpu_model_runner", "vllm.v1.executor.multiproc_executor",
                    "vllm.v1.executor.uniproc_executor", "vllm.platforms.cuda",
                    "vllm.v1.attention.backends.flash_attn", "vllm.v1.attention.backends.triton_attn",
                    "vllm.model_executor.models.qwen2_5_vl", "vllm.model_executor.models.qwen2_vl",
                    "vllm.model_executor.models.qwen3_vl", "vllm.model_executor.models.qwen2",
                    "vllm.model_executor.model_loader.default_loader", "vllm.v1.sample.sampler",
                    "vllm.entrypoints.openai.chat_completion.serving"],
    },
}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pip(*args: str) -> None:
    env = {**os.environ, "PIP_ROOT_USER_ACTION": "ignore", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run([sys.executable, "-m", "pip", *args], check=True, env=env)


def wheel_for(spec: str, folder: Path) -> Path:
    """The downloaded wheel of NAME==VERSION (wheel file names normalise the name to underscores)."""
    name, version = spec.split("==")
    for path in folder.glob("*.whl"):
        parts = path.name.split("-")
        if norm(parts[0]) == norm(name) and parts[1] == version:
            return path
    raise StageError(f"no wheel for {spec} in {folder}")


def fetch(bundle: dict, wheels: Path, pyv: str) -> list[Path]:
    """Download (no deps) what is not in the wheel cache yet; build the sdist-only ones into wheels."""
    wheels.mkdir(parents=True, exist_ok=True)
    missing = [s for s in bundle["wheels"] if not _has(s, wheels)]
    if missing:
        flags = [f"--platform={p}" for p in PLATFORMS]
        pip("download", "-q", "--no-deps", "--only-binary=:all:", f"--python-version={pyv}", "--implementation=cp",
            *flags, "-d", str(wheels), *missing)
    for spec in bundle["sdists"]:
        if not _has(spec, wheels):
            pip("wheel", "-q", "--no-deps", "-w", str(wheels), spec)
    return [wheel_for(spec, wheels) for spec in bundle["wheels"] + bundle["sdists"]]


def _has(spec: str, folder: Path) -> bool:
    try:
        return bool(wheel_for(spec, folder))
    except StageError:
        return False


def make_site(files: list[Path], site: Path, pyv: str) -> None:
    """pip install --target, for the device's Python; console scripts get a `python3` shebang (PATH there)."""
    if site.exists():
        shutil.rmtree(site)
    flags = [f"--platform={p}" for p in PLATFORMS]
    pip("install", "-q", "--no-deps", "--no-index", "--no-compile", "--only-binary=:all:", f"--python-version={pyv}",
        "--implementation=cp", *flags, "--target", str(site), *map(str, files))
    for record in site.glob("*.dist-info/direct_url.json"):  # names this checkout's wheel path: not reproducible
        record.unlink()
    for script in (site / "bin").glob("*") if (site / "bin").is_dir() else []:
        text = script.read_bytes()
        if text.startswith(b"#!") and b"python" in text.split(b"\n", 1)[0]:
            script.write_bytes(b"#!/usr/bin/env python3\n" + text.split(b"\n", 1)[1])


def prune(site: Path, rules: list[tuple[str, str]]) -> list[dict]:
    """Remove each listed path; a rule that matches nothing fails, so a new pin cannot leave a stale rule behind."""
    done = []
    for rel, why in rules:
        path = site / rel
        if not path.exists():
            raise StageError(f"prune rule {rel!r} matches nothing in {site}: update the rule for the new pin")
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
        shutil.rmtree(path) if path.is_dir() else path.unlink()
        done.append({"path": rel, "bytes": size, "why": why})
    return done


def strip_binaries(site: Path) -> int:
    """`strip --strip-unneeded` every ELF file: drops the symbol tables (not the dynamic symbols a loader needs),
    ~44 MB of ray's binaries and ~22 MB of vLLM's; backtraces lose function names, nothing else changes."""
    if os.environ.get("STRIP", "1") == "0" or not shutil.which("strip"):
        return 0
    saved = 0
    for path in sorted(p for p in site.rglob("*") if p.is_file() and not p.is_symlink()):
        with open(path, "rb") as handle:
            if handle.read(4) != b"\x7fELF":
                continue
        before = path.stat().st_size
        subprocess.run(["strip", "--strip-unneeded", str(path)], check=True)
        saved += before - path.stat().st_size
    return saved


def swift_pins() -> dict[str, str]:
    """The pins of scripts/gpu_wheels.sh, which install into the same /tmp/site on the device."""
    text = (Path(__file__).resolve().parent / "gpu_wheels.sh").read_text()
    return {norm(n): v for n, v in re.findall(r"([A-Za-z0-9_.-]+)==([A-Za-z0-9_.+-]+)", text)}


def build(name: str, out: Path, part_size: int, pyv: str) -> dict:
    bundle = BUNDLES[name]
    clash = [f"{s} vs gpu_wheels.sh {swift_pins()[norm(s.split('==')[0])]}" for s in bundle["wheels"]
             if swift_pins().get(norm(s.split("==")[0]), s.split("==")[1]) != s.split("==")[1]]
    if clash:
        raise StageError(f"{name}: versions differ from scripts/gpu_wheels.sh: {'; '.join(clash)}")
    files = fetch(bundle, out / "wheels", pyv)
    site = out / "build" / name
    make_site(files, site, pyv)
    pruned = prune(site, bundle["prune"])
    stripped = strip_binaries(site)
    unprovided = check(site, bundle["entries"])  # static: what the entry modules import that nothing provides
    for module, users in sorted(unprovided.items()):
        print(f"{name}: warning: unprovided import {module} <- {', '.join(sorted(set(users))[:3])}")
    packages = [{"name": s.split("==")[0], "version": s.split("==")[1], "wheel": f.name, "bytes": f.stat().st_size}
                for s, f in zip(bundle["wheels"] + bundle["sdists"], files)]
    manifest = write_manifest(name, site, out, part_size, python=pyv, packages=packages, pruned=pruned,
                              omitted=[{"name": n, "why": w} for n, w in bundle["omitted"]], probe=bundle["probe"],
                              unprovided=sorted(unprovided),
                              stripped_bytes=stripped)
    print(f"{name}: {len(packages)} wheels {sum(p['bytes'] for p in packages) / MiB:.1f} MiB → site "
          f"{manifest['site_bytes'] / MiB:.1f} MiB (pruned {sum(p['bytes'] for p in pruned) / MiB:.1f} MiB, "
          f"stripped {stripped / MiB:.1f} MiB) → "
          f"{manifest['archive']} {manifest['size'] / MiB:.1f} MiB in {len(manifest['parts'])} part(s): "
          + ", ".join(f"{p['name']} {p['size'] / MiB:.1f}" for p in manifest["parts"]))
    return manifest


def main(argv: list[str]) -> int:
    out = Path(os.environ.get("STAGE_OUT", ".stage"))
    part_size = int(float(os.environ.get("PART_MIB", "60")) * MiB)
    pyv = os.environ.get("PYV", "3.12")
    names = argv or list(BUNDLES)
    if unknown := [n for n in names if n not in BUNDLES]:
        print(f"error: unknown bundle(s) {' '.join(unknown)}; known: {' '.join(BUNDLES)}", file=sys.stderr)
        return 2
    try:
        for name in names:
            build(name, out, part_size, pyv)
    except (StageError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"built": names, "out": str(out)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
