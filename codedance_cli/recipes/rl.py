"""Recipe for `codedance rl`: GRPO with the balanced adaptive tool-call reward, on verl or ms-swift.

One recipe drives both engines: `train` holds what GRPO means everywhere,
`verl` / `swift` hold what only one engine understands, `reward` every
coefficient of the reward (see codedance_cli/rewards/).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from codedance_cli.recipes.base import RecipeModel, StageRecipe
from codedance_cli.recipes.common import LoopConfig, ModelSpec, SandboxConfig, SwiftDistributed


class RewardConfig(RecipeModel):
    """Every coefficient of the balanced adaptive tool-call reward (codedance_cli/rewards/score.py, docs/reward.md).

    The defaults are the paper's values (docs/paper-settings.md); the ablations of the paper's Table 3 are
    `sequence_weight: 0, turn_weight: 0` (accuracy + format only) and `turn_weight: 0` (no turn-level term).
    """

    accuracy_weight: float = Field(1.0, description="R for general items: reward of a correct answer.")
    format_weight: float = Field(0.2, description="w for general items: weight of the format penalty f in {-1, 0}.")
    math_accuracy_weight: float = Field(1.2, description="R for math items.")
    math_format_weight: float = Field(0.4, description="w for math items.")
    math_sources: list[str] = Field(
        default_factory=lambda: ["thinklite_eureka", "xince", "mathvista", "mathverse", "mathvision"],
        description="Data sources that take the math path (exact name, or the name followed by '_' or '-'; "
        "metadata.domain 'math' also does).",
    )
    max_answer_chars: int = Field(1000, description="General path: an answer this long or longer fails the format and scores 0.")
    sequence_weight: float = Field(1.0, description="Weight of R_seq = decay(mu) * T in the score (0 turns the term off).")
    tool_correct_bonus: float = Field(1.5, description="T = bonus * tool success rate: the bonus when the answer is right (general).")
    tool_wrong_bonus: float = Field(0.5, description="T's bonus when the answer is wrong (general).")
    math_tool_correct_bonus: float = Field(2.0, description="As tool_correct_bonus, for math items.")
    math_tool_wrong_bonus: float = Field(1.0, description="As tool_wrong_bonus, for math items.")
    difficulty_gamma: float = Field(4.0, description="gamma in decay(mu) = (1 + tanh(gamma * (0.5 - mu))) / 2 - delta.")
    difficulty_delta: float = Field(0.2, description="delta in decay(mu): decay runs from 0.5 + 0.5*tanh(gamma/2) - delta down.")
    turn_weight: float = Field(0.2, description="beta: weight of the normalised per-turn values added to the advantages (0: off).")
    failed_call_penalty: float = Field(-0.5, description="s_i of a failed tool call.")
    turn_discount: float = Field(0.2, description="Discount in c_i = s_i + discount * c_{i+1}.")
    silent_cell_fails: bool = Field(
        False,
        description="Count a cell that printed and showed nothing as a failed call (the release, in effect, does not).",
    )
    judge_policy: Literal["always", "rules_first"] = Field(
        "always",
        description="always: every general rollout is judged (the paper); rules_first: rule matching decides when it "
        "can, the judge when it cannot. Without a judge the rules decide either way.",
    )
    judge_endpoint: str | None = Field(
        None,
        description="OpenAI-compatible base URL of the judge (codedance judge serve); env CODEDANCE_JUDGE_URL overrides. None: rules only.",
    )
    judge_model: str = Field("judge", description="Served model name of the judge.")
    judge_temperature: float = Field(0.3, description="Sampling temperature of general verdicts (math verdicts use 0).")
    judge_answer_types: list[str] = Field(
        default_factory=lambda: ["open", "text"],
        description="rules_first only: answer types the judge decides when the rules say no (choice, number, text, open).",
    )
    judge_timeout_s: float = Field(60.0, description="Per-verdict timeout; a judge that does not answer scores the item as wrong.")


class TrainConfig(RecipeModel):
    """GRPO settings both engines share."""

    learning_rate: float = Field(1e-6, description="Actor learning rate.")
    epochs: int = Field(2, description="Passes over the RL items.")
    max_steps: int | None = Field(None, description="Stop after this many optimizer steps (None: epochs decide).")
    train_batch_size: int = Field(
        256, description="Prompts per GRPO step (verl data.train_batch_size; swift: per_device x devices x accumulation)."
    )
    mini_batch_size: int = Field(256, description="Prompts per PPO mini-batch (verl ppo_mini_batch_size).")
    micro_batch_size_per_gpu: int = Field(4, description="Sequences per forward pass per GPU.")
    rollout_n: int = Field(8, description="Rollouts per prompt (GRPO group size; swift num_generations).")
    max_prompt_length: int = Field(10240, description="Prompt token budget (verl data.max_prompt_length).")
    max_response_length: int = Field(10240, description="Token budget of the whole multi-turn response.")
    temperature: float = Field(1.0, description="Rollout sampling temperature.")
    use_kl_loss: bool = Field(False, description="KL loss against the reference model (the release trains without).")
    kl_coef: float = Field(0.0, description="KL loss coefficient (beta) when use_kl_loss.")
    entropy_coeff: float = Field(0.0, description="Entropy bonus coefficient.")
    loss_agg_mode: Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"] = Field(
        "token-mean", description="How a step's per-token policy losses are averaged: verl's loss_agg_mode, ms-swift's "
        "--loss_type dapo / grpo / dr_grpo. token-mean (verl's default, so the release's) weighs every token alike; "
        "seq-mean-token-mean (ms-swift's own default) divides each completion by its length, which makes a long "
        "wrong completion cost less per token than a short one.")
    master_weights: Literal["float32", "model"] = Field(
        "float32", description="The dtype the trained weights and the optimizer state are kept in. float32: float32 "
        "master weights, forward and backward in model.dtype (verl's FSDP actor default, so the release's); model: the "
        "weights themselves in model.dtype (ms-swift's default), where at RL learning rates most bf16 updates round "
        "to nothing (docs/paper-settings.md, 'Precision of the trained weights').")
    save_steps: int = Field(20, description="Checkpoint every this many steps.")
    gradient_checkpointing: bool = Field(True, description="Trade compute for activation memory.")
    seed: int = Field(42, description="Seed for data order and sampling.")


class VerlConfig(RecipeModel):
    """Settings only verl understands (`python -m verl.trainer.main_ppo`)."""

    nnodes: int = Field(1, description="trainer.nnodes.")
    n_gpus_per_node: int = Field(8, description="trainer.n_gpus_per_node.")
    rollout_name: Literal["vllm", "sglang"] = Field("vllm", description="actor_rollout_ref.rollout.name.")
    tensor_model_parallel_size: int = Field(1, description="Rollout tensor parallel size.")
    gpu_memory_utilization: float = Field(0.3, description="Rollout engine GPU memory share.")
    max_num_batched_tokens: int = Field(32768, description="Rollout engine max batched tokens.")
    max_model_len: int | None = Field(None, gt=0, description="Rollout engine context length (unset: the model's own).")
    enforce_eager: bool = Field(False, description="Rollout engine without CUDA graphs: faster start, slower decoding.")
    agent_workers: int = Field(8, ge=1, description="Agent loop workers (rollout.agent.num_workers); each holds a tool and its sandbox pool.")
    use_remove_padding: bool = Field(
        False, description="Packed sequences without padding in the actor (verl calls flash-attn for them: needs flash-attn installed)."
    )
    attn_implementation: str | None = Field(
        None, description="The actor's attention (model.override_config.attn_implementation): sdpa without flash-attn; unset: verl's flash_attention_2."
    )
    chat_template: Literal["codedance", "model"] = Field(
        "codedance",
        description="Chat template of rollouts (actor_rollout_ref.model.custom_chat_template). codedance: tool results "
        "as the SFT data shows them, a user turn `<tool_response>...</tool_response>` plus the nudge "
        "(codedance_cli/engines/verl/chat_template.py, for Qwen2.5-VL models); model: the checkpoint's own "
        "(Qwen2.5-VL's writes a `tool` turn without `<tool_response>`, which the model never trained on and the reward cannot read).",
    )
    param_offload: bool = Field(True, description="FSDP parameter offload for the actor.")
    optimizer_offload: bool = Field(True, description="FSDP optimizer offload for the actor.")
    max_tool_response_length: int = Field(4096, description="Characters of a tool response kept (multi_turn.max_tool_response_length).")
    max_parallel_calls: int = Field(1, description="Tool calls executed per assistant turn.")
    tool_format: str = Field("hermes", description="multi_turn.format: how tool calls are parsed (hermes = Qwen <tool_call> JSON).")
    project_name: str = Field("codedance", description="trainer.project_name (logging).")
    experiment_name: str = Field("codedance-rl", description="trainer.experiment_name.")
    loggers: list[str] = Field(default_factory=lambda: ["console"], description="trainer.logger (console, wandb, tensorboard).")
    test_freq: int = Field(-1, description="Validate every this many steps (-1: never).")
    val_before_train: bool = Field(False, description="trainer.val_before_train.")
    reward_workers: int = Field(8, description="reward.num_workers: processes computing rewards (the judge calls run there).")
    extra_overrides: list[str] = Field(default_factory=list, description="Further hydra overrides appended verbatim (key=value).")


class SwiftConfig(RecipeModel):
    """Settings only ms-swift understands (`swift rlhf --rlhf_type grpo`)."""

    command: str = Field("swift", description="The ms-swift launcher: a path, or a name looked up beside this Python, then on PATH.")
    train_type: Literal["full", "lora"] = Field("full", description="--tuner_type (ms-swift 4 name of train_type): full or lora.")
    model_type: str | None = Field(None, description="--model_type when ms-swift cannot tell from the checkpoint (e.g. qwen2_5_vl).")
    template: str | None = Field(None, description="--template when ms-swift finds several candidates (e.g. qwen2_5_vl).")
    per_device_train_batch_size: int = Field(2, description="--per_device_train_batch_size (completions per device per step).")
    gradient_accumulation_steps: int = Field(1, description="--gradient_accumulation_steps.")
    max_completion_length: int = Field(1024, description="--max_completion_length: tokens per generation call.")
    max_length: int = Field(8192, description="--max_length: prompt + completion tokens.")
    use_vllm: bool = Field(False, description="--use_vllm: vLLM colocate rollout (GPU); False uses transformers generation (works on CPU).")
    logging_steps: int = Field(1, description="--logging_steps.")
    dataloader_num_workers: int = Field(0, description="--dataloader_num_workers.")
    vit_attention: Literal["model", "varlen"] = Field(
        "model", description="Qwen2.5-VL's vision windows in the trained model's forward: 'varlen' makes one attention "
        "call a block instead of one a window (as the SFT recipe's train.vit_attention; 1.37x an SFT step on an H200).")
    distributed: SwiftDistributed = Field(
        default_factory=SwiftDistributed,
        description="Processes (GPUs) and machines; with several, a GRPO group's rollouts are spread over the "
        "processes and the reward gathers them before its group and batch terms.")
    extra_args: list[str] = Field(default_factory=list, description="Further `swift rlhf` arguments appended verbatim.")


class RlRecipe(StageRecipe):
    stage: Literal["rl"] = "rl"
    engine: Literal["verl", "swift"] = Field("verl", description="verl for clusters; swift (ms-swift GRPO) for one machine.")
    model: ModelSpec = Field(description="The SFT checkpoint to start from (path), its dtype and pixel budget (unset: the one it was trained at).")
    dataset: Path = Field(description="RL items in the trajectory format (question, images, ground truth, metadata.difficulty).")
    val_dataset: Path | None = Field(None, description="Validation items in the trajectory format (verl only).")
    output_dir: Path = Field(description="Where the run folder (exported data, configs, checkpoints, logs) goes.")
    limit: int | None = Field(None, description="Use at most this many RL items.")
    loop: LoopConfig = Field(
        default_factory=lambda: LoopConfig(prompt_version="codedance-toolcall-v1"),
        description="Turn format and turn budget of rollouts (max_turns = assistant turns).",
    )
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig, description="Where rollout code runs (our sandbox is the engines' tool).")
    reward: RewardConfig = Field(default_factory=RewardConfig, description="Reward coefficients and the judge.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="GRPO settings shared by both engines.")
    verl: VerlConfig = Field(default_factory=VerlConfig, description="verl-only settings.")
    swift: SwiftConfig = Field(default_factory=SwiftConfig, description="ms-swift-only settings.")

    @field_validator("model")
    @classmethod
    def _trainable(cls, model: ModelSpec) -> ModelSpec:
        model.require_path("model")
        return model

    def rollout_max_pixels(self) -> int:
        """The pixel budget of rollouts: the recipe's, else the one the starting checkpoint was trained at."""
        from codedance_cli.models.pixel_budget import saved_max_pixels
        from codedance_cli.recipes.common import TRAINING_MAX_PIXELS

        return self.model.max_pixels or saved_max_pixels(self.model.path or "") or TRAINING_MAX_PIXELS
