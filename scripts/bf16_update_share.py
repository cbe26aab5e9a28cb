"""How many of a checkpoint's weights one Adam-sized step can move when the weights are held in bfloat16.

    python scripts/bf16_update_share.py CHECKPOINT_DIR [--lr 1e-6 1e-5 2e-5 5e-5 1e-4] [--seed 0]

Adam moves each weight by about the learning rate a step, whatever the gradient's size. Held in bfloat16 (what
ms-swift trains in when told `--torch_dtype bfloat16`), a weight keeps 8 significant bits, so an update smaller than
half its spacing rounds back to the same value. This applies a step of +-lr (random signs) to every weight in bfloat16
and counts the weights that changed: the share of the model an optimizer step can reach without float32 master
weights (`train.master_weights`, docs/paper-settings.md, "Precision of the trained weights").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file


def moved_share(weights: dict[str, torch.Tensor], lr: float, generator: torch.Generator) -> float:
    """Share of weights whose bfloat16 value changes under a +-lr step."""
    moved = total = 0
    for tensor in weights.values():
        held = tensor.to(torch.bfloat16)
        signs = torch.randint(0, 2, held.shape, generator=generator).float() * 2 - 1
        stepped = (held.float() + lr * signs).to(torch.bfloat16)
        moved += int((stepped != held).sum())
        total += held.numel()
    return moved / total


def load_weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    files = sorted(checkpoint.glob("*.safetensors"))
    if not files:
        print(f"error: {checkpoint}: no *.safetensors files (a transformers checkpoint folder is expected)", file=sys.stderr)
        raise SystemExit(2)  # bad input, as the CLI's BadInput
    weights: dict[str, torch.Tensor] = {}
    for file in files:
        weights.update(load_file(str(file)))
    return {name: tensor for name, tensor in weights.items() if tensor.is_floating_point()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--lr", type=float, nargs="+", default=[1e-6, 1e-5, 2e-5, 5e-5, 1e-4])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    weights = load_weights(args.checkpoint)
    count = sum(tensor.numel() for tensor in weights.values())
    magnitudes = torch.cat([tensor.float().abs().flatten() for tensor in weights.values()])
    print(f"{args.checkpoint}: {count:,} weights, median |w| {magnitudes.median().item():.4g}")
    print("| lr | weights a bf16 step moves |\n| ---: | ---: |")
    for lr in args.lr:
        share = moved_share(weights, lr, torch.Generator().manual_seed(args.seed))
        print(f"| {lr:g} | {100 * share:.1f} % |")


if __name__ == "__main__":
    main()
