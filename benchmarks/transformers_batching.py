"""In-process generation throughput: batched concurrent requests vs one sequence at a time.

The tool loop keeps `loop.concurrency` trajectories in flight, each alternating a
model turn with a sandbox call. Here K workers do the same with the real
`TransformersClient` on the tiny random Qwen2.5-VL (a 30M model: generation is
all per-step overhead, the case batching helps most): each worker sends
`--rounds` requests (an image and a question, greedy, `--max-new-tokens`) with
a short stand-in tool pause between them. Three clients, same requests:

- one at a time (baseline): `max_batch_size=1`, what the client did before batching;
- batched: up to `--max-batch-size` requests per `model.generate`, whatever queued during the last call;
- batched + gather window: the same, waiting `--gather-ms` for more requests before each call.

    .venv/bin/python benchmarks/transformers_batching.py [--device cpu|cuda] [--concurrency 1,8,32] [--rounds 3]

Tokens/s counts completion tokens the callers got back (a batch row that hit EOS early counts only its own).
Runs alternate between the clients and the best of `--repeat` is reported, because shared cores are noisy;
each client loads its own copy of the model.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
from pathlib import Path

from PIL import Image

from codedance_cli.clients.transformers_local import TransformersClient
from codedance_cli.trajectory.media import data_url
from codedance_cli.trajectory.schema import encode_image

CONFIGS = {"one at a time (baseline)": {"max_batch_size": 1}, "batched": {}, "batched + gather window": {}}


def request(index: int, image_side: int) -> list[dict]:
    """A question with a random-pixel image; prompt lengths vary a little, as real turns do."""
    rng = random.Random(index)
    image = Image.frombytes("RGB", (image_side, image_side), rng.randbytes(image_side * image_side * 3))
    question = f"Request {index}: what is in the picture? " + "Look closely. " * (index % 5)
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(encode_image(image))}},
                                         {"type": "text", "text": question}]}]


class CountingModel:
    """Records the rows of each `model.generate` call (the batch sizes the client formed)."""

    def __init__(self, client: TransformersClient) -> None:
        self.sizes: list[int] = []
        self._generate = client.model.generate
        client.model.generate = self.generate

    def generate(self, **inputs):
        self.sizes.append(int(inputs["input_ids"].shape[0]))
        return self._generate(**inputs)


async def worker(client: TransformersClient, requests: list[list[dict]], max_new_tokens: int, tool_s: float, seed: int) -> int:
    """One trajectory's worth: generate, a tool pause (jittered, deterministic), generate, ..."""
    rng, tokens = random.Random(seed), 0
    for messages in requests:
        generation = await client.generate(messages, max_new_tokens=max_new_tokens)
        tokens += generation.completion_tokens or 0
        await asyncio.sleep(tool_s * rng.uniform(0.5, 1.5))
    return tokens


async def measure(client: TransformersClient, counter: CountingModel, concurrency: int, args: argparse.Namespace) -> dict:
    counter.sizes.clear()
    jobs = [[request(w * args.rounds + r, args.image_side) for r in range(args.rounds)] for w in range(concurrency)]
    started = time.perf_counter()
    tokens = await asyncio.gather(*(worker(client, job, args.max_new_tokens, args.tool_ms / 1000, w) for w, job in enumerate(jobs)))
    wall = time.perf_counter() - started
    calls = len(counter.sizes)
    return {"requests": concurrency * args.rounds, "tokens": sum(tokens), "wall_s": wall, "tok_per_s": sum(tokens) / wall,
            "calls": calls, "mean_batch": sum(counter.sizes) / max(calls, 1)}


async def main(args: argparse.Namespace) -> dict:
    levels = [int(k) for k in args.concurrency.split(",")]
    clients: dict[str, tuple[TransformersClient, CountingModel]] = {}
    for name, overrides in CONFIGS.items():
        options = {"max_batch_size": args.max_batch_size, "gather_s": args.gather_ms / 1000 if "gather" in name else 0.0, **overrides}
        client = TransformersClient(args.model, device=args.device, dtype=args.dtype, max_pixels=args.image_side**2, **options)
        clients[name] = client, CountingModel(client)
        for k in levels:  # warm-up, not timed: the first calls of a process (and on cuda of a batch shape) are slow
            await measure(*clients[name], k, argparse.Namespace(**{**vars(args), "rounds": 1}))
    results: dict = {name: {} for name in CONFIGS}
    for k in levels:
        for _ in range(args.repeat):  # alternate the clients, keep each one's best: the shared cores are noisy
            for name, (client, counter) in clients.items():
                run = await measure(client, counter, k, args)
                if k not in results[name] or run["tok_per_s"] > results[name][k]["tok_per_s"]:
                    results[name][k] = run
    for client, _ in clients.values():
        await client.aclose()
    return results


def table(results: dict, args: argparse.Namespace) -> str:
    base_name = next(iter(CONFIGS))
    rows = ["| client | concurrent requests | requests | calls | mean batch | wall s | tokens/s | vs one at a time |",
            "|---|---|---|---|---|---|---|---|"]
    for k in results[base_name]:
        base = results[base_name][k]["tok_per_s"]
        for name in CONFIGS:
            r = results[name][k]
            label = name if name != "batched + gather window" else f"batched + {args.gather_ms:g} ms gather window"
            rows.append(f"| {label} | {k} | {r['requests']} | {r['calls']} | {r['mean_batch']:.1f} | {r['wall_s']:.2f} | "
                        f"{r['tok_per_s']:.0f} | {r['tok_per_s'] / base:.2f}x |")
    rows.append("")
    rows.append(f"settings: {Path(args.model).name} on {args.device} ({args.dtype}), greedy, max_new_tokens={args.max_new_tokens}, "
                f"{args.image_side}x{args.image_side} image per request, {args.rounds} rounds per worker, "
                f"{args.tool_ms:g} ms tool pause (±50%), max_batch_size={args.max_batch_size}, best of {args.repeat}")
    return "\n".join(rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=os.environ.get("CODEDANCE_TINY_MODEL", ".cache/tiny-qwen2.5-vl"), help="Model folder.")
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1).")
    parser.add_argument("--dtype", default="float32", help="Weights dtype (float32, bfloat16, auto).")
    parser.add_argument("--concurrency", default="1,8,32", help="Comma-separated numbers of workers (requests in flight).")
    parser.add_argument("--rounds", type=int, default=3, help="Requests per worker.")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="Tokens per request (fewer if the model emits EOS).")
    parser.add_argument("--max-batch-size", type=int, default=32, help="Batch cap of the batched clients.")
    parser.add_argument("--gather-ms", type=float, default=2.0, help="Gather window of the third client.")
    parser.add_argument("--tool-ms", type=float, default=20.0, help="Mean stand-in tool time between a worker's requests.")
    parser.add_argument("--image-side", type=int, default=224, help="Image width = height (pixels; also the pixel budget).")
    parser.add_argument("--repeat", type=int, default=2, help="Runs of each client at each concurrency (the best is kept).")
    parser.add_argument("--json", action="store_true", help="Print the raw numbers as JSON too.")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    measured = asyncio.run(main(arguments))
    print(table(measured, arguments))
    if arguments.json:
        print(json.dumps(measured, indent=1))
