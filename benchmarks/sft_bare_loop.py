"""The bare PyTorch row of benchmarks/sft_throughput.py: the SFT model's LLM alone, trained in a plain loop.

Why: it is the ceiling the ms-swift rows are measured against at the same shape. transformers' Qwen2 (text only,
the LLM half of the Qwen2.5-VL config: same layers, widths, heads, vocabulary), random init, bf16 weights, SDPA
attention, fused AdamW, no gradient checkpointing, no packing, no data loading (random token ids already on the
GPU), batch x seq tokens a step with seq = the SFT rows' typical sample length. Tokens/s and MFU use the same
FLOP formula as the SFT rows (benchmarks/sft_flops.py), LLM part only.

    python benchmarks/sft_bare_loop.py --model MODEL_DIR --seq 3500 --batch 2 --steps 12 --warmup 3 --out bare.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from sft_flops import load_shape, sequence_flops


def text_config(model_dir: Path) -> dict:
    config = json.loads((model_dir / "config.json").read_text())
    return config.get("text_config") or config


def build(model_dir: Path, device: str, dtype: torch.dtype) -> torch.nn.Module:
    """A random Qwen2ForCausalLM with the LLM shape of the model in `model_dir`."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    text = text_config(model_dir)
    keys = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "rms_norm_eps", "max_position_embeddings")
    config = Qwen2Config(**{key: text[key] for key in keys if key in text},
                         tie_word_embeddings=json.loads((model_dir / "config.json").read_text()).get("tie_word_embeddings", False),
                         attn_implementation="sdpa", use_cache=False)
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2ForCausalLM(config)
    return model.to(dtype).train()


def run(args: argparse.Namespace) -> dict:
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if args.dtype == "bfloat16" else torch.float32
    model = build(args.model, device, dtype)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device.startswith("cuda"))
    vocab = text_config(args.model)["vocab_size"]
    generator = torch.Generator(device=device).manual_seed(0)
    times: list[float] = []
    for step in range(args.warmup + args.steps):
        ids = torch.randint(0, vocab, (args.batch, args.seq), device=device, generator=generator)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        float(loss.detach())  # wait for the step, as the SFT rows' logging does
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    seconds = sum(times)
    tokens = args.batch * args.seq * len(times)
    flops = sequence_flops(load_shape(args.model), args.seq) * args.batch * len(times)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None
    return {
        "row": "bare", "device": device, "dtype": args.dtype, "batch": args.batch, "seq": args.seq,
        "steps": len(times), "seconds": round(seconds, 3), "samples_per_s": args.batch * len(times) / seconds,
        "tokens_per_s": tokens / seconds, "tflops_per_s": flops / seconds / 1e12,
        "peak_allocated_gib": round(peak, 2) if peak is not None else None,
        "step_s": [round(t, 4) for t in times], "parameters": sum(p.numel() for p in model.parameters()),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="Model folder whose config.json gives the LLM shape.")
    parser.add_argument("--seq", type=int, required=True, help="Tokens per sequence (the SFT rows' typical length).")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=12, help="Measured steps (after --warmup).")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default=None, help="cuda when available, else cpu.")
    parser.add_argument("--dtype", choices=["bfloat16", "float32"], default="bfloat16")
    parser.add_argument("--out", type=Path, required=True, help="Where the result JSON goes.")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = run(args)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "step_s"}))


if __name__ == "__main__":
    main()
