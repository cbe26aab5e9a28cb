"""Recipe for `codedance sft`: cold-start SFT of a Qwen2.5-VL model through ms-swift (`swift sft`).

Field names follow ms-swift's own arguments where one exists (see `swift sft --help`),
so a user who knows ms-swift recognises every knob; `extra_args` passes anything else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from codedance_cli.recipes.base import RecipeModel, StageRecipe
from codedance_cli.recipes.common import DataRef, ModelSpec, SwiftDistributed


class SftTrainConfig(RecipeModel):
    """Optimisation settings, each passed to `swift sft` under the same name."""

    learning_rate: float = Field(1e-5, description="Peak learning rate (--learning_rate).")
    num_train_epochs: float = Field(1.0, description="Epochs over the exported dataset (--num_train_epochs).")
    max_steps: int | None = Field(None, description="Stop after this many optimiser steps; overrides epochs (--max_steps).")
    per_device_train_batch_size: int = Field(1, description="Samples per GPU (or CPU process) per micro-step.")
    gradient_accumulation_steps: int = Field(1, description="Micro-steps per optimiser step.")
    warmup_ratio: float = Field(0.05, description="Linear warm-up as a fraction of all steps.")
    lr_scheduler_type: str = Field("cosine", description="transformers scheduler name (cosine, linear, constant, ...).")
    weight_decay: float = Field(0.1, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, description="Gradient clipping norm.")
    max_length: int = Field(8192, description="Tokens per sample (text + image tokens); longer samples are dropped.")
    gradient_checkpointing: bool = Field(True, description="Recompute activations in backward to save memory.")
    master_weights: Literal["model", "float32"] = Field(
        "model", description="The dtype the trained weights and the optimizer state are kept in. model: model.dtype "
        "(ms-swift's default; under DeepSpeed its bf16 optimizer keeps float32 masters anyway); float32: float32 "
        "weights under model.dtype autocast, for low learning rates without DeepSpeed, where a bf16 weight rounds most "
        "steps away (docs/paper-settings.md, 'Precision of the trained weights'). RL recipes default to float32.")
    deepspeed: Literal["none", "zero1", "zero2", "zero3", "zero3_offload"] = Field(
        "none", description="ms-swift's built-in DeepSpeed config; zero3 shards weights, grads and optimizer state.")
    attn_impl: Literal["auto", "sdpa", "eager", "flash_attn", "flash_attention_2"] = Field(
        "auto", description="Attention kernel (--attn_impl); auto leaves ms-swift's default.")
    vit_attention: Literal["model", "varlen"] = Field(
        "model", description="Qwen2.5-VL's vision windows: 'model' as attn_impl gives them (under sdpa one call a "
        "window), 'varlen' one variable-length FlashAttention call a block (torch's kernel; no flash-attn needed).")
    seed: int = Field(42, description="Training seed.")
    dataloader_num_workers: int = Field(2, description="DataLoader worker processes.")
    dataset_num_proc: int = Field(1, description="Processes used by ms-swift to pre-tokenize.")
    logging_steps: int = Field(5, description="Log loss every N steps.")
    save_steps: int = Field(500, description="Checkpoint every N steps.")
    save_total_limit: int | None = Field(2, description="Keep at most this many checkpoints.")
    report_to: str = Field("tensorboard", description="Where transformers reports metrics (tensorboard, wandb, none).")
    save_only_model: bool = Field(True, description="Skip optimizer state in checkpoints (smaller; no exact resume).")


class SftModelParts(RecipeModel):
    """What is trained: full or LoRA, and which parts of the VLM are frozen."""

    tuner_type: Literal["full", "lora"] = Field("full", description="Full fine-tuning or LoRA adapters (--tuner_type).")
    freeze_vit: bool = Field(True, description="Keep the vision encoder frozen.")
    freeze_aligner: bool = Field(True, description="Keep the vision-language merger (projector) frozen.")
    freeze_llm: bool = Field(False, description="Keep the language model frozen.")
    lora_rank: int = Field(8, description="LoRA rank (tuner_type: lora).")
    lora_alpha: int = Field(32, description="LoRA alpha (tuner_type: lora).")
    target_modules: list[str] = Field(["all-linear"], description="LoRA target modules (tuner_type: lora).")


class SftRecipe(StageRecipe):
    stage: Literal["sft"] = "sft"
    model: ModelSpec = Field(description="The model to fine-tune (path: a folder holding config.json, or a hub id), its dtype and pixel budget.")
    model_type: str = Field("qwen2_5_vl", description="ms-swift --model_type (a tiny local model cannot be guessed from its name).")
    template: str = Field("qwen2_5_vl", description="ms-swift --template: how messages become tokens (and which get loss).")
    dataset: DataRef = Field(description="Training trajectories (parquet folder/file); exported to ms-swift jsonl first.")
    export_dir: Path | None = Field(None, description="Where the ms-swift jsonl and its images go; default OUTPUT_DIR/data.")
    prompt_version: str | None = Field(None, description="Render with this prompt version; default: each trajectory's own. direct-v1 trains the no-tool baseline (question -> answer turn only).")
    only_correct: bool = Field(False, description="Export only trajectories whose final answer was judged correct (metadata.correct).")
    output_dir: Path = Field(description="Where checkpoints go; `last` links to the final one.")
    parts: SftModelParts = Field(default_factory=SftModelParts, description="Full/LoRA and frozen parts.")
    train: SftTrainConfig = Field(default_factory=SftTrainConfig, description="Optimisation settings.")
    distributed: SwiftDistributed = Field(default_factory=SwiftDistributed, description="GPUs and machines.")
    swift_command: str = Field("swift", description="The ms-swift launcher to run (`swift` from the ms-swift package).")
    extra_args: list[str] = Field(default_factory=list, description="More `swift sft` arguments, passed as given (e.g. ['--packing', 'true']).")
    env: dict[str, str] = Field(default_factory=dict, description="More environment variables for the run.")

    @field_validator("model")
    @classmethod
    def _trainable(cls, model: ModelSpec) -> ModelSpec:
        model.require_path("model")
        return model
