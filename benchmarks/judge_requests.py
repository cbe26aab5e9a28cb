"""Ask a served judge for verdicts through our judge client: does the endpoint answer, how fast, how readable.

    python benchmarks/judge_requests.py --endpoint http://127.0.0.1:18901/v1 [--model judge] [--n 64] [--concurrency 16]

Sends n (question, reference, candidate) triples, half of them matching, with no verdict cache, and prints one
table row per rubric (general, math): requests, wall seconds, requests/s, verdicts readable, and the first raw reply.
A random tiny judge gives noise verdicts; the point is the serving path (`codedance judge serve` with vLLM or
transformers serve) and its throughput under the reward's concurrency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codedance_cli.rewards.judge_client import JudgeClient  # noqa: E402


def triples(n: int) -> list[tuple[str, str, str]]:
    """Distinct items (no two share a cache key), every other one with the right answer."""
    return [(f"How many red circles are in image {i}?", str(i % 9), str(i % 9 if i % 2 == 0 else i % 9 + 1)) for i in range(n)]


async def measure(endpoint: str, model: str | None, n: int, concurrency: int, rubric: str) -> dict:
    client = JudgeClient(endpoint, model, concurrency=concurrency, max_retries=2)
    started = time.perf_counter()
    try:
        verdicts = await asyncio.gather(*(client.judge(*item, rubric=rubric) for item in triples(n)))
    finally:
        await client.aclose()
    wall = time.perf_counter() - started
    return {
        "rubric": rubric, "requests": n, "wall_s": round(wall, 2), "requests_per_s": round(n / wall, 1),
        "readable": sum(v.correct is not None for v in verdicts), "first_raw": verdicts[0].raw[:80] if verdicts else "",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--model", default="judge")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    args = parser.parse_args()
    rows = [asyncio.run(measure(args.endpoint, args.model, args.n, args.concurrency, rubric)) for rubric in ("general", "math")]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print("| rubric | requests | wall s | requests/s | readable verdicts | first raw reply |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for row in rows:
        raw = " ".join(row["first_raw"].split()).replace("|", "\\|")
        print(f"| {row['rubric']} | {row['requests']} | {row['wall_s']} | {row['requests_per_s']} | {row['readable']}/{row['requests']} | {raw} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
