"""The `swift sft` command line and environment for an SFT recipe (pure: no side effects, easy to test).

Argument names are ms-swift 4's (`swift/arguments/` in the installed package): e.g. `--tuner_type`
(not the older `--train_type`), `--freeze_vit`, `--freeze_aligner`, `--deepspeed zero3`.
Multi-GPU and multi-node go through the environment variables `swift` reads before it
re-launches itself under torchrun: NPROC_PER_NODE, NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT.
Qwen's vision utilities read the per-image pixel budget from MAX_PIXELS / MIN_PIXELS (ms-swift's documented
way for Qwen2.5-VL; its generic `--max_pixels` rescale needs torchvision, so it is not used).
"""

from __future__ import annotations

from pathlib import Path

from codedance_cli.engines.swift.args import (
    TrainingRun, ddp_backend_args, distributed_env, flag, frozen_vit_args, training_args, vit_attention_env,
    vit_autocast_env,
)
from codedance_cli.recipes.common import TRAINING_MAX_PIXELS
from codedance_cli.recipes.sft import SftRecipe

PLUGIN_FILE = Path(__file__).with_name("sft_plugin.py")


def swift_env(recipe: SftRecipe) -> dict[str, str]:
    """Environment variables the run needs on top of the caller's."""
    env: dict[str, str] = {"MAX_PIXELS": str(recipe.model.max_pixels or TRAINING_MAX_PIXELS)}
    if recipe.model.min_pixels is not None:
        env["MIN_PIXELS"] = str(recipe.model.min_pixels)
    env.update(vit_attention_env(recipe.train.vit_attention))
    env.update(vit_autocast_env(recipe.model.training_dtype(), recipe.train.master_weights))
    env.update(distributed_env(recipe.distributed))
    env.update(recipe.env)
    return env


def swift_args(recipe: SftRecipe, model: str, dataset_jsonl: Path, launcher: str = "swift") -> list[str]:
    """The full argv of `swift sft` for `recipe`, training on `dataset_jsonl`."""
    train, parts = recipe.train, recipe.parts
    run = TrainingRun(
        model=model, dataset=dataset_jsonl, output_dir=Path(recipe.output_dir).resolve(), tuner_type=parts.tuner_type,
        torch_dtype=recipe.model.training_dtype(), learning_rate=train.learning_rate, epochs=train.num_train_epochs,
        per_device_train_batch_size=train.per_device_train_batch_size,
        gradient_accumulation_steps=train.gradient_accumulation_steps, max_length=train.max_length,
        gradient_checkpointing=train.gradient_checkpointing, seed=train.seed,
        dataloader_num_workers=train.dataloader_num_workers, dataset_num_proc=train.dataset_num_proc,
        logging_steps=train.logging_steps, save_steps=train.save_steps, report_to=train.report_to,
        max_steps=train.max_steps, master_weights=train.master_weights,
    )
    argv = [
        launcher, "sft",
        *training_args(run),
        "--model_type", recipe.model_type,
        "--template", recipe.template,
        "--split_dataset_ratio", "0",
        "--freeze_vit", flag(parts.freeze_vit),
        "--freeze_aligner", flag(parts.freeze_aligner),
        "--freeze_llm", flag(parts.freeze_llm),
        "--warmup_ratio", repr(train.warmup_ratio),
        "--lr_scheduler_type", train.lr_scheduler_type,
        "--weight_decay", repr(train.weight_decay),
        "--max_grad_norm", repr(train.max_grad_norm),
        "--save_only_model", flag(train.save_only_model),
    ]  # fmt: skip
    argv += ["--external_plugins", str(PLUGIN_FILE)]  # our model type (CPU) and the frozen-ViT fix (all types)
    argv += frozen_vit_args(parts.freeze_vit)
    optional = {
        "--save_total_limit": train.save_total_limit,
        "--deepspeed": None if train.deepspeed == "none" else train.deepspeed,
        "--attn_impl": None if train.attn_impl == "auto" else train.attn_impl,
    }
    argv += [item for name, value in optional.items() if value is not None for item in (name, str(value))]
    argv += ddp_backend_args(recipe.distributed)
    if parts.tuner_type == "lora":
        argv += ["--lora_rank", str(parts.lora_rank), "--lora_alpha", str(parts.lora_alpha),
                 "--target_modules", *parts.target_modules]
    return argv + list(recipe.extra_args)
