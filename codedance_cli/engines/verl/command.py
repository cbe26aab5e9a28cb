"""`codedance rl` with `engine: verl`: the exact `python -m verl.trainer.main_ppo` command and its files.

Everything verl needs is derived from the recipe here, as plain hydra overrides
(so `--dry-run` shows them and tests compose them against verl's own config):
GRPO with the balanced adaptive tool-call reward (our per-rollout reward
function with its `reward.json`, our agent loop manager that adds the group and
batch terms, our `grpo_bat` estimator: codedance_cli/engines/verl/bat.py), n rollouts
per prompt, the tool agent loop with our sandbox tool (`verl_tool_config.yaml`) and
our chat template (tool results rendered as the SFT data shows them: chat_template.py),
and the data exported by `export_verl`. It runs verl's classic trainer
(`trainer.use_v1=False`), whose advantage step can see the per-turn offsets. On a multi-node Ray cluster, `output_dir` must be
on a filesystem every node sees (the tool YAML, reward.json and data are read there).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

from codedance_cli.recipes.rl import RlRecipe
from codedance_cli.common.atomic import atomic_write_text
from codedance_cli.engines.rl_files import RunFiles
from codedance_cli.engines.tool_schema import tool_schema_dict
from codedance_cli.engines.verl.chat_template import CHAT_TEMPLATE

BAT_MODULE = "codedance_cli.engines.verl.bat"
ESTIMATOR = "grpo_bat"  # registered by BAT_MODULE, which verl imports when it loads the manager class
MANAGER_CLASS = f"{BAT_MODULE}.CodeDanceAgentLoopManager"

TOOL_CLASS = "codedance_cli.engines.verl.tool.CodeDanceSandboxTool"


def reward_function_path() -> Path:
    """The file verl imports our `compute_score` from (it loads custom reward functions by path)."""
    return Path(__file__).resolve().with_name("reward.py")


def tool_config(recipe: RlRecipe) -> dict:
    """verl tool YAML: our sandbox tool class, its settings, and the schema the model was trained on."""
    return {
        "tools": [
            {
                "class_name": TOOL_CLASS,
                "config": {
                    "type": "native",
                    "sandbox": recipe.sandbox.model_dump(mode="json"),
                    "prompt_version": recipe.loop.prompt_version,
                    "observation_max_pixels": recipe.loop.observation_max_pixels,
                    "max_observation_images": recipe.loop.max_observation_images,
                    "silent_cell_fails": recipe.reward.silent_cell_fails,
                    "session_idle_s": 1800,
                },
                "tool_schema": tool_schema_dict(),
            }
        ]
    }


def absolute_if_local(model: str) -> str:
    """A local folder as an absolute path (verl's Ray workers do not share our working directory); a hub id as is."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else model


def hydra_quoted(text: str) -> str:
    """`text` as a single-quoted hydra override value that hydra reads back unchanged (argv, no shell).

    Hydra un-escapes only the backslashes right before a quote (an escaped quote, or the closing one), so those are
    doubled and quotes escaped; every other backslash stays as written. `${` would be an interpolation that
    OmegaConf resolves later, so such text is refused.
    """
    if "${" in text:
        raise ValueError("an override value containing '${' would be resolved as an interpolation")
    return "'" + re.sub(r"(\\*)('|\Z)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), text) + "'"


VERL_DTYPES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


def verl_model_dtype(recipe: RlRecipe) -> str:
    """The actor's weight dtype under FSDP (verl computes in bf16 either way): float32 masters, or the model's dtype."""
    return "fp32" if recipe.train.master_weights == "float32" else VERL_DTYPES[recipe.model.training_dtype()]


def verl_overrides(recipe: RlRecipe, files: RunFiles) -> list[str]:
    """Hydra overrides for verl's ppo_trainer config, in the order a reader checks them."""
    train, verl = recipe.train, recipe.verl
    has_val = recipe.val_dataset is not None
    overrides = [
        # algorithm: GRPO plus the per-turn offsets, no KL in the reward
        f"algorithm.adv_estimator={ESTIMATOR}",
        "algorithm.use_kl_in_reward=False",
        # data (written by export_verl)
        f"data.train_files=['{files.train}']",
        f"data.val_files=['{files.val if has_val else files.train}']",
        f"data.train_batch_size={train.train_batch_size}",
        f"data.max_prompt_length={train.max_prompt_length}",
        f"data.max_response_length={train.max_response_length}",
        "data.filter_overlong_prompts=True",
        "data.truncation=error",
        "data.image_key=images",
        "data.return_raw_chat=True",
        f"data.seed={train.seed}",
        # actor
        f"actor_rollout_ref.model.path={absolute_if_local(recipe.model.path or '')}",
        f"actor_rollout_ref.model.enable_gradient_checkpointing={train.gradient_checkpointing}",
        f"actor_rollout_ref.model.use_remove_padding={verl.use_remove_padding}",
        f"actor_rollout_ref.actor.optim.lr={train.learning_rate}",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={train.mini_batch_size}",
        f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={train.micro_batch_size_per_gpu}",
        f"actor_rollout_ref.actor.use_kl_loss={train.use_kl_loss}",
        f"actor_rollout_ref.actor.kl_loss_coef={train.kl_coef}",
        f"actor_rollout_ref.actor.entropy_coeff={train.entropy_coeff}",
        f"actor_rollout_ref.actor.loss_agg_mode={train.loss_agg_mode}",
        f"actor_rollout_ref.actor.fsdp_config.param_offload={verl.param_offload}",
        f"actor_rollout_ref.actor.fsdp_config.model_dtype={verl_model_dtype(recipe)}",
        f"actor_rollout_ref.actor.fsdp_config.optimizer_offload={verl.optimizer_offload}",
        f"actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu={train.micro_batch_size_per_gpu}",
        f"actor_rollout_ref.ref.fsdp_config.param_offload={verl.param_offload}",
        # rollout: n samples per prompt, multi-turn with our sandbox as the tool
        f"actor_rollout_ref.rollout.name={verl.rollout_name}",
        "actor_rollout_ref.rollout.mode=async",
        f"actor_rollout_ref.rollout.n={train.rollout_n}",
        f"actor_rollout_ref.rollout.temperature={train.temperature}",
        f"actor_rollout_ref.rollout.tensor_model_parallel_size={verl.tensor_model_parallel_size}",
        f"actor_rollout_ref.rollout.gpu_memory_utilization={verl.gpu_memory_utilization}",
        f"actor_rollout_ref.rollout.max_num_batched_tokens={verl.max_num_batched_tokens}",
        f"actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu={train.micro_batch_size_per_gpu}",
        f"actor_rollout_ref.rollout.enforce_eager={verl.enforce_eager}",
        "actor_rollout_ref.rollout.agent.default_agent_loop=tool_agent",
        f"actor_rollout_ref.rollout.agent.num_workers={verl.agent_workers}",
        f"+actor_rollout_ref.rollout.agent.agent_loop_manager_class={MANAGER_CLASS}",
        "actor_rollout_ref.rollout.multi_turn.enable=True",
        f"actor_rollout_ref.rollout.multi_turn.tool_config_path={files.tool_config}",
        f"actor_rollout_ref.rollout.multi_turn.max_assistant_turns={recipe.loop.max_turns}",
        f"actor_rollout_ref.rollout.multi_turn.max_parallel_calls={verl.max_parallel_calls}",
        f"actor_rollout_ref.rollout.multi_turn.max_tool_response_length={verl.max_tool_response_length}",
        f"actor_rollout_ref.rollout.multi_turn.format={verl.tool_format}",
        # reward: our function, its coefficients file
        f"reward.custom_reward_function.path={reward_function_path()}",
        "reward.custom_reward_function.name=compute_score",
        f"+reward.custom_reward_function.reward_kwargs.reward_config={files.reward_config}",
        "reward.reward_manager.name=naive",
        f"reward.num_workers={verl.reward_workers}",
        # trainer: the classic one (the v1 trainer hands estimators a fixed list of fields)
        "trainer.use_v1=False",
        f"trainer.nnodes={verl.nnodes}",
        f"trainer.n_gpus_per_node={verl.n_gpus_per_node}",
        f"trainer.total_epochs={train.epochs}",
        f"trainer.save_freq={train.save_steps}",
        f"trainer.test_freq={verl.test_freq if has_val else -1}",
        f"trainer.val_before_train={verl.val_before_train and has_val}",
        f"trainer.project_name={verl.project_name}",
        f"trainer.experiment_name={verl.experiment_name}",
        f"trainer.logger=[{','.join(repr(name) for name in dict.fromkeys([*verl.loggers, 'file']))}]",  # file: our summary
        f"trainer.default_local_dir={files.checkpoints}",
    ]
    if train.max_steps is not None:
        overrides.append(f"trainer.total_training_steps={train.max_steps}")
    if verl.max_model_len is not None:
        overrides.append(f"actor_rollout_ref.rollout.max_model_len={verl.max_model_len}")
    if verl.chat_template == "codedance":
        overrides.append(f"actor_rollout_ref.model.custom_chat_template={hydra_quoted(CHAT_TEMPLATE)}")
    if verl.attn_implementation is not None:
        overrides.append(f"+actor_rollout_ref.model.override_config.attn_implementation={verl.attn_implementation}")
    return overrides + list(verl.extra_overrides)


def verl_command(recipe: RlRecipe, files: RunFiles) -> list[str]:
    """argv of the verl launch (run on the head node of a Ray cluster, or one machine)."""
    return [sys.executable, "-m", "verl.trainer.main_ppo", *verl_overrides(recipe, files)]


def verl_env(recipe: RlRecipe, files: RunFiles) -> dict[str, str]:
    """Environment added for the launch (the judge URL reaches the reward workers through it)."""
    env = {"CODEDANCE_REWARD_CONFIG": str(files.reward_config), "HYDRA_FULL_ERROR": "1", "VERL_FILE_LOGGER_PATH": str(files.verl_metrics)}
    if recipe.reward.judge_endpoint:
        env["CODEDANCE_JUDGE_URL"] = recipe.reward.judge_endpoint
    return env


def write_verl_files(recipe: RlRecipe, files: RunFiles) -> None:
    """reward.json and the tool YAML (the data is exported separately)."""
    atomic_write_text(files.reward_config, json.dumps(recipe.reward.model_dump(mode="json"), indent=2))
    atomic_write_text(files.tool_config, yaml.safe_dump(tool_config(recipe), sort_keys=False))
