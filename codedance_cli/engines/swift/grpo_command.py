"""`codedance rl` with `engine: swift`: ms-swift GRPO on one machine, our reward and sandbox as plugins.

    swift rlhf --rlhf_type grpo --external_plugins codedance_cli/engines/swift/grpo_plugin.py \
        --reward_funcs codedance_reward --multi_turn_scheduler codedance_sandbox ...

Without `swift.use_vllm` ms-swift generates with transformers (its
TransformersEngine), which is what runs on CPU. The reward coefficients, the
sandbox/loop settings and the reward log reach the plugins through files named
in the environment (`CODEDANCE_REWARD_CONFIG`, `CODEDANCE_RL_SETTINGS`,
`CODEDANCE_REWARD_LOG`).
"""

from __future__ import annotations

import json
from pathlib import Path

from codedance_cli.engines.swift.args import (
    TrainingRun, ddp_backend_args, distributed_env, flag, frozen_vit_args, training_args, vit_attention_env,
    vit_autocast_env,
)
from codedance_cli.recipes.rl import RlRecipe
from codedance_cli.common.atomic import atomic_write_text
from codedance_cli.engines.rl_files import RunFiles

# verl's loss aggregation modes as ms-swift's GRPO loss types (swift/rlhf_trainers/grpo_trainer.py: dapo divides by the
# completion tokens of the accumulation window, grpo each completion by its own length, dr_grpo by a constant length)
SWIFT_LOSS_TYPES = {"token-mean": "dapo", "seq-mean-token-mean": "grpo", "seq-mean-token-sum-norm": "dr_grpo"}
REWARD_NAME = "codedance_reward"
SCHEDULER_NAME = "codedance_sandbox"


def plugin_path() -> Path:
    return Path(__file__).resolve().with_name("grpo_plugin.py")


def swift_args(recipe: RlRecipe, files: RunFiles) -> list[str]:
    """`swift rlhf` arguments for the recipe."""
    train, swift = recipe.train, recipe.swift
    run = TrainingRun(
        model=recipe.model.require_path("model"), dataset=files.swift_train, output_dir=files.checkpoints,
        tuner_type=swift.train_type, torch_dtype=recipe.model.training_dtype(), learning_rate=train.learning_rate,
        epochs=train.epochs, per_device_train_batch_size=swift.per_device_train_batch_size,
        gradient_accumulation_steps=swift.gradient_accumulation_steps, max_length=swift.max_length,
        gradient_checkpointing=train.gradient_checkpointing, seed=train.seed,
        dataloader_num_workers=swift.dataloader_num_workers, dataset_num_proc=1, logging_steps=swift.logging_steps,
        save_steps=train.save_steps, report_to="none", max_steps=train.max_steps, master_weights=train.master_weights,
    )
    args = [
        "rlhf",
        "--rlhf_type", "grpo",
        *training_args(run),
        "--external_plugins", str(plugin_path()),
        "--reward_funcs", REWARD_NAME,
        "--multi_turn_scheduler", SCHEDULER_NAME,
        "--max_turns", str(recipe.loop.max_turns),
        "--num_generations", str(train.rollout_n),
        "--max_completion_length", str(swift.max_completion_length),
        "--temperature", str(train.temperature),
        "--beta", str(train.kl_coef if train.use_kl_loss else 0.0),
        "--loss_type", SWIFT_LOSS_TYPES[train.loss_agg_mode],
        "--use_vllm", flag(swift.use_vllm),
        "--log_completions", "true",
    ]  # fmt: skip
    if swift.model_type:
        args += ["--model_type", swift.model_type]
    if swift.template:
        args += ["--template", swift.template]
    # ms-swift freezes the ViT unless told otherwise (`--freeze_vit true`; extra_args may say `false`, which still works,
    # with the tower not checkpointed)
    return args + frozen_vit_args(True) + ddp_backend_args(swift.distributed) + list(swift.extra_args)


def swift_env(recipe: RlRecipe, files: RunFiles) -> dict[str, str]:
    """Environment for the launch: where the plugins find their settings, the judge, the processor's pixel budget."""
    env = {
        "CODEDANCE_REWARD_CONFIG": str(files.reward_config),
        "CODEDANCE_RL_SETTINGS": str(files.settings),
        "CODEDANCE_REWARD_LOG": str(files.reward_log),
        "MAX_PIXELS": str(recipe.rollout_max_pixels()),
    }
    if recipe.reward.judge_endpoint:
        env["CODEDANCE_JUDGE_URL"] = recipe.reward.judge_endpoint
    return (env | vit_attention_env(recipe.swift.vit_attention)
            | vit_autocast_env(recipe.model.training_dtype(), recipe.train.master_weights)
            | distributed_env(recipe.swift.distributed))


def write_swift_files(recipe: RlRecipe, files: RunFiles) -> None:
    """reward.json and the scheduler's settings (the data is exported separately)."""
    atomic_write_text(files.reward_config, json.dumps(recipe.reward.model_dump(mode="json"), indent=2))
    settings = {"sandbox": recipe.sandbox.model_dump(mode="json"), "loop": recipe.loop.model_dump(mode="json")}
    atomic_write_text(files.settings, json.dumps(settings, indent=2))
