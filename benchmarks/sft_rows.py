"""The rows of benchmarks/sft_throughput.py and the `codedance sft` command line of each.

The baseline is recipes/qwen2.5-vl-7b/sft.yaml as it stands, with only what one GPU and this model need changed:
the model (a random Qwen2.5-VL-3B-shaped one, whose small tokenizer needs our `codedance_qwen2_5_vl` type and
template), one process instead of 8 (so no ZeRO-3), gradient accumulation 4 instead of 16 (shorter steps, so a row
fits in a minute; the optimizer step is then amortised over 4 micro-batches, about 1% of a step here), a step
budget, a log line every step, no tensorboard. Every other row changes one ms-swift knob from there, through the
recipe (`--set train....`) or its `extra_args`; `combined` stacks the knobs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sft_profile import PROFILE_STEPS

from codedance_cli.engines.swift.frozen_vit import KEEP_ENV

BASE_RECIPE = "recipes/qwen2.5-vl-7b/sft.yaml"
MODEL_TYPE = "codedance_qwen2_5_vl"
ACCUMULATION = 4
BATCH4 = ("train.per_device_train_batch_size=4", "train.gradient_accumulation_steps=1")
SDPA_PADDING_FREE = "CODEDANCE_SDPA_PADDING_FREE"  # read by sft_probe.py inside `swift sft` (the same name there)
PROFILED = 2  # optimizer steps a profile row profiles, after the usual warm-up


@dataclass(frozen=True)
class Row:
    """One `codedance sft` run: what differs from the baseline, and how long a step is relative to it."""

    name: str
    knob: str
    sets: tuple[str, ...] = ()
    extra_args: tuple[str, ...] = ()
    sdpa_padding_free: bool = False  # run padding_free / packing on SDPA (benchmarks/sft_probe.py)
    step_share: float = 1.0  # steps this row runs, as a share of --steps (a packed step holds ~4x the samples)
    profile: bool = False  # torch.profiler over PROFILED steps after the warm-up (sft_profile.py); slows the row
    vit_backward: bool = False  # ms-swift's own set-up: the frozen ViT still runs backward (engines/swift/frozen_vit.py)

    def env(self, warmup: int) -> dict[str, str]:
        """What the probe inside `swift sft` reads to switch this row's extras on."""
        env = {SDPA_PADDING_FREE: "1"} if self.sdpa_padding_free else {}
        if self.profile:
            env[PROFILE_STEPS] = f"{warmup}:{PROFILED}"
        if self.vit_backward:
            env[KEEP_ENV] = "1"
        return env


ROWS: dict[str, Row] = {row.name: row for row in (
    Row("baseline", f"{BASE_RECIPE} at this size: batch 1 x 4, gradient checkpointing, SDPA, 4 workers"),
    Row("vit_backward", "as ms-swift sets it up: the frozen ViT still runs backward under checkpointing (the baseline "
        "before codedance_cli/engines/swift/frozen_vit.py)", vit_backward=True),
    Row("liger", "--use_liger_kernel true", extra_args=("--use_liger_kernel", "true")),
    Row("no_ckpt", "gradient_checkpointing false", sets=("train.gradient_checkpointing=false",)),
    Row("batch4", "batch 4 x 1 (padded to the longest)", sets=BATCH4),
    Row("padding_free", "batch 4 x 1 + --padding_free true (one unpadded row)", sets=BATCH4,
        extra_args=("--padding_free", "true"), sdpa_padding_free=True),
    Row("packing", "--packing true (rows of up to max_length 16384 tokens)", extra_args=("--packing", "true"),
        sdpa_padding_free=True, step_share=0.34),
    Row("workers8", "dataloader_num_workers 8", sets=("train.dataloader_num_workers=8",)),
    Row("vit_per_window", "vit_attention model: the ViT's windows one SDPA call each (the baseline before the 7B "
        "recipe took vit_attention varlen)", sets=("train.vit_attention=model",)),
    Row("profile", f"baseline under torch.profiler ({PROFILED} steps; slower than baseline)", profile=True),
    Row("profile_no_ckpt", f"no_ckpt under torch.profiler ({PROFILED} steps)",
        sets=("train.gradient_checkpointing=false",), profile=True),
    Row("eager", "attn_impl eager (instead of SDPA)", sets=("train.attn_impl=eager",)),
    # what the no_ckpt profile left (GPU busy 60 %, ~25k kernel launches a step, 5.7k elementwise multiplies):
    Row("liger_no_ckpt", "--use_liger_kernel true + gradient_checkpointing false (fused norms, SwiGLU, RoPE, loss)",
        sets=("train.gradient_checkpointing=false",), extra_args=("--use_liger_kernel", "true")),
    Row("batch2_no_ckpt", "batch 2 x 2 (padded) + gradient_checkpointing false: half the launches a token",
        sets=("train.per_device_train_batch_size=2", "train.gradient_accumulation_steps=2",
              "train.gradient_checkpointing=false")),
    Row("fp32_master", "train.master_weights float32: float32 weights and Adam state under bf16 autocast (what a "
        "low lr needs without DeepSpeed); its cost in time and memory", sets=("train.master_weights=float32",)),
    Row("combined", "liger + no checkpointing + batch 4 padding-free + 8 workers",
        sets=(*BATCH4, "train.gradient_checkpointing=false", "train.dataloader_num_workers=8"),
        extra_args=("--use_liger_kernel", "true", "--padding_free", "true"), sdpa_padding_free=True),
)}
BARE = "bare"  # the plain PyTorch loop (benchmarks/sft_bare_loop.py), not a `codedance sft` run
DEFAULT_ROWS = ("baseline", BARE, "no_ckpt", "profile_no_ckpt", "combined", "vit_per_window", "profile", "vit_backward",
                "liger", "batch4", "padding_free", "packing", "workers8")  # the rows that explain the gap first
SMOKE_ROWS = ("baseline", "padding_free", BARE)


@dataclass(frozen=True)
class RunSettings:
    """What every row of one benchmark run shares."""

    model: Path
    data: Path
    work: Path
    probe: Path
    max_pixels: int
    min_pixels: int
    steps: int
    warmup: int
    swift_command: str | None = None
    cpu: bool = False  # the smoke run: float32, no dataloader workers, one preprocessing process


def row_steps(row: Row, settings: RunSettings) -> tuple[int, int]:
    """(max_steps, warm-up steps) of `row`; a profile row runs one step past its window, whose start closes it."""
    warmup = max(1, round(settings.warmup * row.step_share)) if settings.warmup else 0
    if row.profile:
        return warmup + PROFILED + 1, warmup
    measured = max(1, round(settings.steps * row.step_share))
    return warmup + measured, warmup


def overrides(row: Row, settings: RunSettings, output_dir: Path) -> list[str]:
    """The `--set` values of `row` on top of the 7B recipe."""
    max_steps, _ = row_steps(row, settings)
    sets = [
        f"model.path={settings.model}", f"model_type={MODEL_TYPE}", f"template={MODEL_TYPE}",
        f"model.max_pixels={settings.max_pixels}", f"model.min_pixels={settings.min_pixels}",
        f"dataset.path={settings.data}", f"export_dir={settings.work / 'export'}", f"output_dir={output_dir}",
        "distributed.nproc_per_node=1", "train.deepspeed=none", "train.attn_impl=sdpa",
        f"train.gradient_accumulation_steps={ACCUMULATION}", f"train.max_steps={max_steps}", "train.logging_steps=1",
        f"train.save_steps={max_steps}", "train.save_total_limit=1", "train.report_to=none",
    ]
    if settings.swift_command:
        sets.append(f"swift_command={settings.swift_command}")
    if settings.cpu:
        sets += ["model.dtype=float32", "train.dataloader_num_workers=0", "train.dataset_num_proc=1"]
    sets += row.sets
    sets.append("extra_args=" + json.dumps(["--custom_register_path", str(settings.probe), *row.extra_args]))
    return [item for value in sets for item in ("--set", value)]
