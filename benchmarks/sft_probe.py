"""ms-swift plugin for benchmarks/sft_throughput.py: what each optimizer step waited for and what it computed.

Loaded inside `swift sft` (`--custom_register_path THIS_FILE`, which ms-swift imports like `--external_plugins`), it
wraps transformers' `Trainer.get_batch_samples`, the call that pulls one step's micro-batches from the dataloader,
and appends a line per step to OUTPUT_DIR/probe.jsonl: when the step began, the seconds spent inside the dataloader's
`next` (the GPU has nothing to do then: with `logging_steps 1` the previous step ended in a synchronising `.item()`),
and per micro-batch the real sequence lengths, the token slots the batch occupies (padding included), the image
grids the ViT sees and the tokens that carry a loss. ms-swift's logging.jsonl has step times and memory but none of
these, and FLOPs (hence MFU) need the sequence lengths of every sample.

With CODEDANCE_SDPA_PADDING_FREE=1 it also lets `--padding_free` / `--packing` run with SDPA attention, which ms-swift
4.6 refuses (flash-attn only): it keeps the text position row in the collated `position_ids` ([4, 1, T] instead of
[3, 1, T]), from which transformers' Qwen2.5-VL builds a block-diagonal causal mask for SDPA, so each packed sample
attends only to itself (tests/test_sft_sdpa_padding_free.py checks the logits equal those of each sample alone).

One more switch, for the rows that explain the numbers: CODEDANCE_PROFILE_STEPS="W:N" profiles optimizer steps
W+1 .. W+N with torch.profiler (benchmarks/sft_profile.py). (The varlen rows need no switch here: they set the
recipe's `train.vit_attention: varlen`, which our own plug-in file applies.)
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer

PROBE_NAME = "probe.jsonl"
SDPA_PADDING_FREE = "CODEDANCE_SDPA_PADDING_FREE"
sys.path.insert(0, str(Path(__file__).resolve().parent))  # ms-swift imports this file by path: its siblings next

from sft_profile import PROFILE_STEPS, StepProfiler, parse_window  # noqa: E402


def batch_counts(batch: dict[str, Any]) -> dict[str, Any]:
    """Sequence lengths, token slots, image grids and trained tokens of one collated micro-batch."""
    input_ids = batch.get("input_ids")
    slots = int(input_ids.numel()) if input_ids is not None else 0
    cu_seq_lens = batch.get("cu_seq_lens_q")
    mask = batch.get("attention_mask")
    if cu_seq_lens is not None:  # padding-free / packing: one row, sequences delimited by cumulative lengths
        lengths = torch.diff(cu_seq_lens).tolist()
    elif isinstance(mask, torch.Tensor) and mask.ndim == 2:
        lengths = mask.sum(dim=1).tolist()
    elif input_ids is not None:
        lengths = [int(input_ids.shape[-1])] * int(input_ids.shape[0])
    else:
        lengths = []
    grid = batch.get("image_grid_thw")
    labels = batch.get("labels")
    return {
        "lengths": [int(n) for n in lengths],
        "slots": slots,
        "grids": grid.tolist() if isinstance(grid, torch.Tensor) else [],
        "trained": int((labels != -100).sum()) if isinstance(labels, torch.Tensor) else 0,
    }


class _TimedIterator:
    """The dataloader iterator, with the seconds spent in its `next` added up."""

    def __init__(self, iterator: Any) -> None:
        self.iterator = iterator
        self.waited = 0.0

    def __iter__(self) -> _TimedIterator:
        return self

    def __next__(self) -> Any:
        start = time.perf_counter()
        try:
            return next(self.iterator)
        finally:
            self.waited += time.perf_counter() - start


def _peak_allocated_gib() -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**30, 3) if torch.cuda.is_available() else None


def _probed(original: Any) -> Any:
    """`Trainer.get_batch_samples` that also appends the step's line to OUTPUT_DIR/probe.jsonl."""

    def get_batch_samples(self: Trainer, epoch_iterator: Any, num_batches: int, device: Any) -> Any:
        begun = time.perf_counter()
        timed = _TimedIterator(epoch_iterator)
        batches, num_items = original(self, timed, num_batches, device)
        called = time.perf_counter() - begun
        self._probe_steps = getattr(self, "_probe_steps", 0) + 1
        profiler = _step_profiler(self)
        if profiler is not None:
            profiler.on_step(self._probe_steps, self.model)
        record = {
            "step": self._probe_steps, "t": begun, "wait_s": round(timed.waited, 6), "call_s": round(called, 6),
            "peak_allocated_gib": _peak_allocated_gib(), "micro": [batch_counts(batch) for batch in batches],
        }
        if self.is_world_process_zero():
            with (Path(self.args.output_dir) / PROBE_NAME).open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
        return batches, num_items

    get_batch_samples._codedance_probe = True  # type: ignore[attr-defined]
    return get_batch_samples


def _step_profiler(trainer: Trainer) -> StepProfiler | None:
    """The trainer's profiler when CODEDANCE_PROFILE_STEPS asks for one (main process only)."""
    window = os.environ.get(PROFILE_STEPS)
    if not window or not trainer.is_world_process_zero():
        return None
    if not hasattr(trainer, "_probe_profiler"):
        skip, steps = parse_window(window)
        trainer._probe_profiler = StepProfiler(skip, steps, Path(trainer.args.output_dir))
    return trainer._probe_profiler


def _keep_text_positions(original: Any) -> Any:
    """Wrap a Qwen2-VL template collator so padding-free batches carry [text; t; h; w] position ids."""

    def collate(self: Any, batch: list[dict[str, Any]], *, padding_to: int | None = None) -> dict[str, Any]:
        res = original(self, batch, padding_to=padding_to)
        text = res.get("text_position_ids")
        positions = res.get("position_ids")
        if self.padding_free and isinstance(text, torch.Tensor) and isinstance(positions, torch.Tensor) \
                and positions.ndim == 3 and positions.shape[0] == 3:
            res["position_ids"] = torch.cat([text[None].to(positions.dtype), positions], dim=0)
        return res

    collate._codedance_sdpa = True  # type: ignore[attr-defined]
    return collate


def enable_sdpa_padding_free() -> None:
    """Let padding_free / packing run with SDPA, each sample masked to itself (see the module docstring)."""
    from swift.arguments.sft_args import SftArguments
    from swift.template.templates.qwen import Qwen2VLTemplate

    if getattr(Qwen2VLTemplate._data_collator, "_codedance_sdpa", False):
        return
    Qwen2VLTemplate._data_collator = _keep_text_positions(Qwen2VLTemplate._data_collator)
    original_check = SftArguments._check_padding_free

    def check(self: Any) -> None:
        if (self.padding_free or self.packing) and self.attn_impl == "sdpa":
            self.padding_free = True  # what ms-swift's own check sets for packing
            return
        original_check(self)

    SftArguments._check_padding_free = check


def install() -> None:
    """Apply the probe (always) and the SDPA padding-free path (when asked) in this process; idempotent."""
    if not getattr(Trainer.get_batch_samples, "_codedance_probe", False):  # the file may be imported twice
        Trainer.get_batch_samples = _probed(Trainer.get_batch_samples)
    if os.environ.get(SDPA_PADDING_FREE) == "1":
        enable_sdpa_padding_free()


install()
