"""Tool-loop rollouts of one model through each in-process client, same items and greedy settings, in one run.

Each client runs `codedance eval` (tool mode) in its own process, one after the other, so each has the GPU to
itself; the table puts every client against the first one (the baseline, transformers by default):

    python benchmarks/rollout_clients.py --model CKPT --items HELDOUT --out DIR \
        [--clients transformers vllm-batch vllm] [--limit 96] [--concurrency 64] [--set KEY=VALUE ...]

Clients: `transformers` (in-process generate, batched by our batcher), `vllm-batch` (vLLM's `LLM.chat` over the
requests gathered in a short window, waiting for the whole batch), `vllm` (vLLM's AsyncLLM, one request at a time
into its continuous batching). "rollout s" is the rollout phase, from the first trajectory's start to the last one's
end (the loop records both), so the engines' load times stay out of tokens/s; "process s" includes them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codedance_cli.common.jsonl import read_records  # noqa: E402

CLIENTS = {
    "transformers": ["--set", "model.backend=transformers"],
    "vllm-batch": ["--set", "model.backend=vllm", "--set", "model.vllm.batching=batch"],
    "vllm": ["--set", "model.backend=vllm", "--set", "model.vllm.batching=continuous"],
}


def run_client(name: str, args: argparse.Namespace) -> dict:
    """One `codedance eval` with this client; its wall time and what its samples say."""
    out = Path(args.out) / f"eval-{name}"
    shutil.rmtree(out, ignore_errors=True)  # a measurement, not a resume
    command = [
        sys.executable, "-m", "codedance_cli", "eval", args.recipe,
        "--set", f"model.path={args.model}", "--set", f"model.device={args.device}", "--set", f"model.dtype={args.dtype}",
        "--set", f"benchmarks=[{{name: procedural, path: {args.items}, limit: {args.limit}}}]",
        "--set", "mode=tool", "--set", f"output_dir={out}", "--set", f"loop.concurrency={args.concurrency}",
        "--set", "loop.temperature=0", *CLIENTS[name],
    ]
    for override in args.set:
        command += ["--set", override]
    started = time.perf_counter()
    with (Path(args.out) / f"eval-{name}.log").open("w") as log:
        status = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}).returncode
    wall = time.perf_counter() - started
    samples = read_records(out / "samples.jsonl")
    return {"client": name, "exit": status, "wall_s": wall, "samples": {s["task_id"]: s["trajectory"] for s in samples}}


def summarize(run: dict, baseline: dict) -> dict:
    """Tokens, throughput, accuracy-free facts, and agreement of the greedy outputs with the baseline client."""
    trajectories = run["samples"]
    tokens = sum(turn.get("completion_tokens") or 0 for t in trajectories.values() for turn in t["turns"])
    loops = [t.get("metadata", {}).get("loop", {}) for t in trajectories.values()]
    spans = [(m["started_at"], m["started_at"] + m["wall_s"]) for m in loops if "started_at" in m]
    phase = max(end for _, end in spans) - min(start for start, _ in spans) if spans else 0.0
    turns = sum(len(t["turns"]) for t in trajectories.values())
    turn_seconds = [turn["generation_s"] for t in trajectories.values() for turn in t["turns"] if turn.get("generation_s") is not None]
    shared = sorted(set(trajectories) & set(baseline["samples"]))
    first_equal = sum(
        bool(trajectories[key]["turns"]) and bool(baseline["samples"][key]["turns"])
        and trajectories[key]["turns"][0]["text"] == baseline["samples"][key]["turns"][0]["text"]
        for key in shared
    )
    answers_equal = sum(trajectories[key].get("final_answer") == baseline["samples"][key].get("final_answer") for key in shared)
    return {
        "client": run["client"], "exit": run["exit"], "samples": len(trajectories), "turns": turns,
        "completion_tokens": tokens, "process_s": round(run["wall_s"], 1), "rollout_s": round(phase, 1),
        "tokens_per_s": round(tokens / phase, 1) if phase else 0.0,
        "median_turn_s": round(statistics.median(turn_seconds), 2) if turn_seconds else 0.0,
        "first_turn_equal": f"{first_equal}/{len(shared)}", "answer_equal": f"{answers_equal}/{len(shared)}",
    }


def print_table(rows: list[dict]) -> None:
    base = rows[0]
    print(f"| client | exit | samples | turns | tokens | process s | rollout s | tokens/s | x {base['client']} | median s a turn "
          "| first turn = | answer = |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        ratio = row["tokens_per_s"] / base["tokens_per_s"] if base["tokens_per_s"] else float("nan")
        print(f"| {row['client']} | {row['exit']} | {row['samples']} | {row['turns']} | {row['completion_tokens']} | {row['process_s']} | {row['rollout_s']} "
              f"| {row['tokens_per_s']} | {ratio:.2f} | {row['median_turn_s']} | {row['first_turn_equal']} | {row['answer_equal']} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--items", required=True, help="procedural held-out folder (codedance synth output)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--clients", nargs="+", default=list(CLIENTS), choices=list(CLIENTS))
    parser.add_argument("--recipe", default="recipes/nano/eval.yaml")
    parser.add_argument("--limit", type=int, default=96)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--set", action="append", default=[], help="further recipe overrides for every client")
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    runs = []
    for name in dict.fromkeys(args.clients):
        runs.append(run_client(name, args))
        print(f"{name}: exit {runs[-1]['exit']}, {len(runs[-1]['samples'])} samples, {runs[-1]['wall_s']:.1f} s", flush=True)
    rows = [summarize(run, runs[0]) for run in runs]
    print_table(rows)
    (Path(args.out) / "rollout_clients.json").write_text(json.dumps(rows, indent=2))
    return 0 if all(row["exit"] == 0 for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
