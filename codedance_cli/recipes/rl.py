"""Recipe for `codedance rl`: GRPO with the balanced adaptive tool-call reward, on verl or ms-swift.

One recipe drives both engines: `train` holds what GRPO means everywhere,
`verl` / `swift` hold what only one engine understands, `reward` every
coefficient of the reward (see codedance_cli/rewards/).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from codedance_cli.recipes.base import RecipeModel, StageRecipe
from codedance_cli.recipes.common import LoopConfig, SandboxConfig


class RewardConfig(RecipeModel):
    """Coefficients of score = R*a + w*f + tool_weight*T + turn_weight*mean(c) (codedance_cli/rewards/score.py)."""

    accuracy_weight: float = Field(1.0, description="R for general items: reward of a correct answer.")
    format_weight: float = Field(0.2, description="w for general items: weight of the format penalty f in {-1, 0}.")
    math_accuracy_weight: float = Field(1.2, description="R for math items.")
    math_format_weight: float = Field(0.4, description="w for math items.")
    math_markers: list[str] = Field(
        default_factory=lambda: ["math", "geometry", "geo3k"],
        description="An item is math when its data_source or metadata.domain contains one of these (case-insensitive).",
    )
    max_answer_chars: int = Field(1000, description="An answer this long or longer is a format failure and scores accuracy 0.")
    tool_weight: float = Field(0.1, description="Weight of the sequence-level, difficulty-aware tool incentive T.")
    tool_correct_bonus: float = Field(1.5, description="T's bonus per unit tool success rate when the answer is right (general).")
    tool_wrong_bonus: float = Field(0.5, description="T's bonus per unit tool success rate when the answer is wrong (general).")
    math_tool_correct_bonus: float = Field(2.0, description="As tool_correct_bonus, for math items.")
    math_tool_wrong_bonus: float = Field(1.0, description="As tool_wrong_bonus, for math items.")
    redundancy_penalty: float = Field(1.0, description="T's cost of calls on easy items, scaled by (1 - difficulty).")
    redundancy_cap: int = Field(3, ge=1, description="Calls at which the redundancy cost saturates.")
    default_difficulty: float = Field(
        0.5, ge=0.0, le=1.0, description="Difficulty of items whose metadata has neither difficulty nor pass_rate."
    )
    turn_weight: float = Field(0.1, description="beta: weight of the turn-level term mean(c_i) (the release's step_beta 0.1/0.2).")
    failed_call_penalty: float = Field(-0.5, description="s_i of a failed tool call (error, timeout, no output).")
    turn_discount: float = Field(0.2, description="gamma in c_i = s_i + gamma * c_{i+1}.")
    judge_endpoint: str | None = Field(
        None,
        description="OpenAI-compatible base URL of the judge (codedance judge serve); env CODEDANCE_JUDGE_URL overrides. None: rules only.",
    )
    judge_model: str = Field("judge", description="Served model name of the judge.")
    judge_answer_types: list[str] = Field(
        default_factory=lambda: ["open"], description="Answer types the judge decides when the rules say no (choice, number, text, open)."
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
    """Settings only ms-swift understands (`swift rlhf --rlhf_type grpo`, one machine)."""

    train_type: Literal["full", "lora"] = Field("full", description="--tuner_type (ms-swift 4 name of train_type): full or lora.")
    model_type: str | None = Field(None, description="--model_type when ms-swift cannot tell from the checkpoint (e.g. qwen2_5_vl).")
    template: str | None = Field(None, description="--template when ms-swift finds several candidates (e.g. qwen2_5_vl).")
    torch_dtype: Literal["float32", "bfloat16", "float16"] = Field("bfloat16", description="--torch_dtype (float32 on CPU).")
    per_device_train_batch_size: int = Field(2, description="--per_device_train_batch_size (completions per device per step).")
    gradient_accumulation_steps: int = Field(1, description="--gradient_accumulation_steps.")
    max_completion_length: int = Field(1024, description="--max_completion_length: tokens per generation call.")
    max_length: int = Field(8192, description="--max_length: prompt + completion tokens.")
    use_vllm: bool = Field(False, description="--use_vllm: vLLM colocate rollout (GPU); False uses transformers generation (works on CPU).")
    logging_steps: int = Field(1, description="--logging_steps.")
    dataloader_num_workers: int = Field(0, description="--dataloader_num_workers.")
    image_max_pixels: int = Field(
        1280 * 28 * 28,
        description="MAX_PIXELS for the stock qwen2_5_vl template (qwen_vl_utils); codedance_qwen2_5_vl uses the processor's own budget.",
    )
    extra_args: list[str] = Field(default_factory=list, description="Further `swift rlhf` arguments appended verbatim.")


class RlRecipe(StageRecipe):
    stage: Literal["rl"] = "rl"
    engine: Literal["verl", "swift"] = Field("verl", description="verl for clusters; swift (ms-swift GRPO) for one machine.")
    model: str = Field(description="The SFT checkpoint to start from.")
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
