"""SFT close to the hardware limit (issue 20): `codedance sft` throughput and MFU, one ms-swift knob per row.

On a GPU: a random-init Qwen2.5-VL-3B-shaped model (scripts/make_tiny_model.py at full size, 3.75B parameters,
built on the GPU), procedural trajectories made on the spot (`codedance synth`, every solution executed in the
sandbox; only those with >= --min-code-turns code turns kept), every image resized to --pixels (min = max pixels:
see docs/performance.md for why), then one short `codedance sft` run per row (benchmarks/sft_rows.py: the 7B
recipe's settings at this size, then one knob each) and a bare PyTorch loop over the same LLM shape. Each row
reports samples/s, tokens/s (real tokens through the LLM, image tokens included), model TFLOP/s and MFU against
--peak-tflops (benchmarks/sft_flops.py says how FLOPs are counted), the share of step time spent waiting on the
dataloader, the share of token slots that were padding, and peak memory; then a table with ratios against the
baseline row, and sft_throughput.json.

    python benchmarks/sft_throughput.py --work /tmp/sft-mfu --out OUT [--rows baseline,bare,liger] [--budget-s 540]
    python benchmarks/sft_throughput.py --smoke      # CPU: the nano tiny model, 2 steps a row, float32

Rows run one after another, each alone on the GPU; with --budget-s a row that would not fit is skipped (reported
as such) and one that runs over is stopped, so the results come back within a device call's time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
sys.path.insert(0, str(BENCHMARKS))

from sft_flops import FORMULA, Shape, load_shape
from sft_metrics import summarize
from sft_profile import PROFILE_JSON, markdown
from sft_rows import BARE, BASE_RECIPE, DEFAULT_ROWS, ROWS, SMOKE_ROWS, RunSettings, overrides, row_steps
from sft_table import table



class Clock:
    """The run's time budget: what is left, and whether a row still fits."""

    def __init__(self, budget_s: float | None) -> None:
        self.deadline = time.monotonic() + budget_s if budget_s else None

    def left(self) -> float:
        return self.deadline - time.monotonic() if self.deadline else float("inf")


def run_logged(argv: list[str], log: Path, timeout: float, env: dict[str, str] | None = None) -> tuple[int, float]:
    """Run `argv` from the repo root in its own process group, output to `log`; kill the group past `timeout`."""
    started = time.monotonic()
    with log.open("w", encoding="utf-8") as sink:
        process = subprocess.Popen(argv, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env={**os.environ, **(env or {})}, start_new_session=True)
        try:
            code = process.wait(timeout=None if timeout == float("inf") else max(1.0, timeout))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            code = 124
    return code, time.monotonic() - started


def build_model(out: Path, args: argparse.Namespace) -> Path:
    """The random Qwen2.5-VL-3B-shaped model (reused when already built)."""
    if (out / "config.json").is_file():
        return out
    device = "cuda" if _cuda() else "cpu"
    argv = [sys.executable, str(REPO / "scripts" / "make_tiny_model.py"), str(out), "--preset", "qwen2.5-vl-3b",
            "--dtype", args.dtype, "--device", device, "--max-pixels", str(args.pixels)]
    code, seconds = run_logged(argv, out.parent / "model.log", float("inf"))
    if code:
        sys.exit(f"model build failed (exit {code}): see {out.parent / 'model.log'}")
    print(f"model: {out} built in {seconds:.0f} s", flush=True)
    return out


def make_data(work: Path, args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    """Procedural trajectories with >= --min-code-turns code turns, in work/data (reused when there)."""
    from codedance_cli.trajectory import read_trajectories, write_trajectories

    data, synth = work / "data", work / "synth"
    if not data.exists():
        workers = str(max(2, min(16, os.cpu_count() or 2)))
        argv = [sys.executable, "-m", "codedance_cli", "synth", "recipes/nano/synth.yaml", "--set", f"num_items={args.items}",
                "--set", f"seed={args.seed}", "--set", f"output={synth}", "--set", f"concurrency={workers}",
                "--set", f"sandbox.workers={workers}"]
        code, seconds = run_logged(argv, work / "synth.log", float("inf"))
        if code:
            sys.exit(f"codedance synth failed (exit {code}): see {work / 'synth.log'}")
        kept = [t for t in read_trajectories(synth) if sum(1 for turn in t.turns if turn.code) >= args.min_code_turns]
        if not kept:
            sys.exit(f"no synthesised trajectory has {args.min_code_turns} code turns")
        write_trajectories(data, kept)
        print(f"data: {len(kept)} of {args.items} procedural trajectories with >= {args.min_code_turns} code turns "
              f"({seconds:.0f} s)", flush=True)
    trajectories = list(read_trajectories(data))
    stats = {
        "trajectories": len(trajectories),
        "code_turns": statistics.mean(sum(1 for turn in t.turns if turn.code) for t in trajectories),
        "images": statistics.mean(len(t.images) + sum(len(turn.observation.images) for turn in t.turns if turn.observation)
                                  for t in trajectories),
    }
    return data, stats


def fresh_dir(settings: RunSettings, name: str) -> Path:
    out_dir = settings.work / "rows" / name
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    return out_dir


def run_bare(settings: RunSettings, clock: Clock, args: argparse.Namespace, results: list[dict]) -> dict:
    """The plain PyTorch loop at the LLM's shape, seq = the first SFT row's median sample length."""
    out_dir = fresh_dir(settings, BARE)
    lengths = [r["median_length"] for r in results if r.get("median_length")]
    seq = args.bare_seq or int(lengths[0] if lengths else 4096)
    argv = [sys.executable, str(BENCHMARKS / "sft_bare_loop.py"), "--model", str(settings.model), "--seq", str(seq),
            "--batch", str(args.bare_batch), "--steps", str(args.steps), "--warmup", str(args.warmup),
            "--dtype", args.dtype, "--out", str(out_dir / "bare.json")]
    path = os.pathsep.join(filter(None, [str(BENCHMARKS), str(REPO), os.environ.get("PYTHONPATH")]))
    code, wall = run_logged(argv, out_dir / "run.log", clock.left() - 5, {"PYTHONPATH": path})
    result: dict[str, Any] = {"row": BARE, "exit": code, "wall_s": round(wall, 1),
                              "knob": f"plain PyTorch loop, LLM only, batch {args.bare_batch} x {seq} tokens, SDPA, "
                                      "fused AdamW, no checkpointing"}
    if (out_dir / "bare.json").exists():
        bare = json.loads((out_dir / "bare.json").read_text())
        result.update({k: bare[k] for k in ("samples_per_s", "tokens_per_s", "tflops_per_s", "peak_allocated_gib", "step_s")})
        result.update(steps_measured=bare["steps"], mfu=bare["tflops_per_s"] / args.peak_tflops, data_wait_share=0.0,
                      padding_share=0.0, median_length=seq)
    elif code:
        result["error_hint"] = error_hint(out_dir)
    return result


def run_sft_row(name: str, settings: RunSettings, clock: Clock, args: argparse.Namespace, shape: Shape) -> dict:
    """One `codedance sft` run, measured; its checkpoint deleted afterwards (7.5 GB a row would fill the disk)."""
    row = ROWS[name]
    out_dir = fresh_dir(settings, name)
    argv = [sys.executable, "-m", "codedance_cli", "sft", str(REPO / BASE_RECIPE), *overrides(row, settings, out_dir)]
    _, warmup = row_steps(row, settings)
    code, wall = run_logged(argv, out_dir / "run.log", clock.left() - 5, row.env(warmup))
    result = {"row": name, "knob": row.knob, "exit": code, "wall_s": round(wall, 1)}
    result.update(summarize(out_dir, shape, warmup, peak_tflops=args.peak_tflops))
    if (out_dir / PROFILE_JSON).exists():
        result["profile"] = json.loads((out_dir / PROFILE_JSON).read_text())
    if code:
        result["error_hint"] = error_hint(out_dir)
    for checkpoint in out_dir.glob("checkpoint-*"):
        shutil.rmtree(checkpoint, ignore_errors=True)
    return result


def error_hint(out_dir: Path) -> str:
    """The last line naming an error in the row's logs (ms-swift's swift.log first)."""
    for log in (out_dir / "swift.log", out_dir / "run.log"):
        if log.exists():
            lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
            hits = [line for line in lines if "Error" in line or "error" in line]
            if hits or lines:
                return (hits or lines)[-1][:300]
    return ""


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="CPU run: nano tiny model, float32, 2 steps a row, rows "
                        + ",".join(SMOKE_ROWS))
    parser.add_argument("--work", type=Path, default=Path("/tmp/sft-throughput"), help="Model, data and runs go here.")
    parser.add_argument("--out", type=Path, default=None, help="Where sft_throughput.json and the table go (default WORK/out).")
    parser.add_argument("--model", type=Path, default=None, help="Use this model instead of building the 3B-shaped one.")
    parser.add_argument("--rows", default=",".join(DEFAULT_ROWS), help=f"Comma-separated rows, in order; known: {', '.join([*ROWS, BARE])}.")
    parser.add_argument("--steps", type=int, default=12, help="Measured optimizer steps a row (after --warmup).")
    parser.add_argument("--warmup", type=int, default=3, help="Steps left out of the measurement.")
    parser.add_argument("--items", type=int, default=640, help="Procedural items to synthesise (before the code-turn filter).")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--min-code-turns", type=int, default=2)
    parser.add_argument("--pixels", type=int, default=1003520, help="Per-image pixel budget (MAX_PIXELS; 1280 visual tokens).")
    parser.add_argument("--min-pixels", type=int, default=None,
                        help="MIN_PIXELS (default: --pixels, so every image, crops too, is resized to the budget).")
    parser.add_argument("--peak-tflops", type=float, default=790.0, help="Dense bf16 peak of the GPU (H200 SXM: ~790 without sparsity).")
    parser.add_argument("--bare-batch", type=int, default=2, help="Bare loop sequences a step (2 x 3.5k tokens, no checkpointing).")
    parser.add_argument("--bare-seq", type=int, default=0, help="Bare loop sequence length (0: the first SFT row's median).")
    parser.add_argument("--budget-s", type=float, default=None, help="Stop starting rows when less than --row-min-s is left.")
    parser.add_argument("--row-min-s", type=float, default=60.0)
    parser.add_argument("--dtype", choices=["bfloat16", "float32"], default="bfloat16")
    args = parser.parse_args(argv)
    if args.smoke:
        tiny = os.environ.get("CODEDANCE_TINY_MODEL") or str(REPO / ".cache" / "tiny-qwen2.5-vl")
        args.model = args.model or Path(tiny)
        args.rows = ",".join(SMOKE_ROWS) if args.rows == ",".join(DEFAULT_ROWS) else args.rows
        args.steps, args.warmup, args.items, args.pixels, args.dtype = 1, 1, 24, 50176, "float32"
        args.work = args.work if args.work != Path("/tmp/sft-throughput") else Path("/tmp/sft-throughput-smoke")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    clock = Clock(args.budget_s)
    names = [name.strip() for name in args.rows.split(",") if name.strip()]
    unknown = [name for name in names if name not in ROWS and name != BARE]
    if unknown:
        sys.exit(f"unknown rows {unknown}; known: {', '.join([*ROWS, BARE])}")
    args.work.mkdir(parents=True, exist_ok=True)
    out = args.out or args.work / "out"
    out.mkdir(parents=True, exist_ok=True)
    model = args.model.resolve() if args.model else build_model(args.work / "model", args)
    data, data_stats = make_data(args.work, args)
    shape = load_shape(model)
    swift = shutil.which("swift")
    settings = RunSettings(model=model, data=data.resolve(), work=args.work.resolve(), probe=BENCHMARKS / "sft_probe.py",
                           max_pixels=args.pixels, min_pixels=args.min_pixels or args.pixels, steps=args.steps, warmup=args.warmup,
                           swift_command=swift, cpu=args.smoke or not _cuda())
    report: dict[str, Any] = {"peak_tflops": args.peak_tflops, "flops": FORMULA, "model": str(model),
                              "shape": shape.__dict__, "data": {**data_stats, "max_pixels": args.pixels, "min_pixels": settings.min_pixels},
                              "settings": {"steps": args.steps, "warmup": args.warmup, "cpu_smoke": settings.cpu}, "rows": []}
    results: list[dict[str, Any]] = report["rows"]
    for name in names:
        if clock.left() < args.row_min_s:
            results.append({"row": name, "skipped": f"{clock.left():.0f} s left of the budget"})
            print(f"{name}: skipped ({clock.left():.0f} s left)", flush=True)
            continue
        result = run_bare(settings, clock, args, results) if name == BARE else run_sft_row(name, settings, clock, args, shape)
        results.append(result)
        print(f"{name}: exit {result.get('exit')}, {result.get('wall_s')} s wall, "
              f"{_fmt(result.get('tokens_per_s'))} tokens/s, MFU {_fmt(result.get('mfu'), pct=True)}"
              + (f" -- {result['error_hint']}" if result.get("error_hint") else ""), flush=True)
        (out / "sft_throughput.json").write_text(json.dumps(report, indent=2) + "\n")  # partial results survive a kill
    text = table(results)
    for result in results:  # what each profiled row's steps spent their time on
        if result.get("profile"):
            text += f"\n\nprofile of {result['row']}:\n\n" + markdown(result["profile"])
    if settings.cpu:
        text = "CPU run: float32, no dataloader workers, one preprocessing process (the knob column says the GPU settings)\n\n" + text
    (out / "sft_throughput.md").write_text(text + "\n")
    (out / "sft_throughput.json").write_text(json.dumps(report, indent=2) + "\n")
    print(text)
    return 0 if all(r.get("exit", 0) == 0 for r in results) else 1


def _fmt(value: float | None, pct: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.1f}%" if pct else f"{value:,.0f}"


if __name__ == "__main__":
    sys.exit(main())
