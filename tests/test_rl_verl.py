"""`codedance rl` on verl: our overrides compose with verl's own hydra config; the tool YAML and the reward
function load through verl's own loaders. Nothing here starts Ray or a GPU engine."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("verl")

from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.errors import ConfigCompositionException  # noqa: E402

from codedance_cli.recipes import load_recipe  # noqa: E402
from codedance_cli.recipes.rl import RlRecipe  # noqa: E402
from codedance_cli.engines.rl_files import RunFiles  # noqa: E402
from codedance_cli.engines.verl.chat_template import CHAT_TEMPLATE  # noqa: E402
from codedance_cli.engines.verl.command import TOOL_CLASS, hydra_quoted, verl_overrides, write_verl_files  # noqa: E402
from conftest import REPO_ROOT, run_codedance  # noqa: E402

VERL_CONFIG_DIR = str(Path(importlib.util.find_spec("verl").origin).parent / "trainer" / "config")
PAPER_RECIPE = REPO_ROOT / "recipes" / "qwen2.5-vl-7b" / "rl.yaml"


def compose_verl(overrides: list[str]):
    with initialize_config_dir(config_dir=VERL_CONFIG_DIR, version_base=None):
        return compose(config_name="ppo_trainer", overrides=overrides)


@pytest.fixture(scope="module")
def paper_recipe(tmp_path_factory) -> RlRecipe:
    out = tmp_path_factory.mktemp("verl-run")
    return load_recipe(PAPER_RECIPE, [f"output_dir={out}", "model=/models/sft"], expect_stage="rl")


def test_paper_recipe_composes_and_passes_verl_validation(paper_recipe: RlRecipe) -> None:
    files = RunFiles(paper_recipe.output_dir)
    config = compose_verl(verl_overrides(paper_recipe, files))
    rollout = config.actor_rollout_ref.rollout
    assert config.algorithm.adv_estimator == "grpo_bat" and config.trainer.use_v1 is False
    from verl.utils.import_utils import load_class_from_fqn  # how verl's trainer loads the manager class

    manager = load_class_from_fqn(rollout.agent.agent_loop_manager_class, "AgentLoopManager")
    assert manager.__name__ == "CodeDanceAgentLoopManager"
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn

    assert get_adv_estimator_fn("grpo_bat").__name__ == "compute_grpo_bat_advantage"  # registered by that import
    assert (config.data.train_batch_size, config.actor_rollout_ref.actor.ppo_mini_batch_size) == (256, 256)
    assert config.actor_rollout_ref.actor.optim.lr == pytest.approx(1e-6)
    assert config.actor_rollout_ref.actor.use_kl_loss is False
    assert config.actor_rollout_ref.actor.loss_agg_mode == "token-mean"  # as ms-swift's dapo on the one-machine path
    assert config.actor_rollout_ref.actor.fsdp_config.model_dtype == "fp32"  # float32 master weights, as ms-swift's
    assert (rollout.n, rollout.name, rollout.tensor_model_parallel_size, rollout.gpu_memory_utilization) == (8, "vllm", 1, 0.3)
    assert rollout.multi_turn.enable is True and rollout.agent.default_agent_loop == "tool_agent"
    assert rollout.multi_turn.tool_config_path == str(files.tool_config)
    assert (config.data.max_prompt_length, config.data.max_response_length) == (10240, 10240)
    assert (config.trainer.nnodes, config.trainer.n_gpus_per_node, config.trainer.save_freq) == (2, 8, 20)
    assert config.actor_rollout_ref.model.custom_chat_template == CHAT_TEMPLATE  # our template, through hydra unchanged
    reward_fn = config.reward.custom_reward_function
    assert Path(reward_fn.path).is_file() and reward_fn.name == "compute_score"
    assert reward_fn.reward_kwargs.reward_config == str(files.reward_config)

    from verl.trainer.main_ppo import validate_config  # verl's own pre-flight checks (batch divisibility, ...)
    from verl.trainer.ppo.utils import need_critic, need_reference_policy

    validate_config(config=config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))


def test_master_weights_in_the_model_dtype_reach_verl_as_its_own_spelling(tmp_path: Path) -> None:
    recipe = load_recipe(PAPER_RECIPE, [f"output_dir={tmp_path}", "model.path=/models/sft", "train.master_weights=model",
                                        "model.dtype=bfloat16"], expect_stage="rl")
    config = compose_verl(verl_overrides(recipe, RunFiles(recipe.output_dir)))
    assert config.actor_rollout_ref.actor.fsdp_config.model_dtype == "bf16"


def test_chat_template_override_quoting_and_the_models_own(paper_recipe: RlRecipe) -> None:
    """Any text survives hydra's quoted-value grammar (backslashes before quotes, a trailing one); `${` is refused;
    `chat_template: model` leaves the checkpoint's template."""
    texts = ["it's", "a\\'b", "end\\", "\\\\'", "{{ '\\n' }}\n{%- x -%}", ""]
    config = compose_verl([f"+codedance_quoted.t{index}={hydra_quoted(text)}" for index, text in enumerate(texts)])
    assert [config.codedance_quoted[f"t{index}"] for index in range(len(texts))] == texts
    with pytest.raises(ValueError, match="interpolation"):
        hydra_quoted("${oc.env:HOME}")
    own = paper_recipe.model_copy(deep=True)
    own.verl.chat_template = "model"
    config = compose_verl(verl_overrides(own, RunFiles(own.output_dir)))
    assert config.actor_rollout_ref.model.custom_chat_template is None


def test_misspelled_key_fails_at_composition(paper_recipe: RlRecipe) -> None:
    files = RunFiles(paper_recipe.output_dir)
    bad = paper_recipe.model_copy(deep=True)
    bad.verl.extra_overrides = ["actor_rollout_ref.rollout.multi_turn.max_asistant_turns=3"]
    with pytest.raises(ConfigCompositionException, match="max_asistant_turns"):
        compose_verl(verl_overrides(bad, files))


def test_dry_run_prints_command_and_environment(tmp_path: Path) -> None:
    result = run_codedance("rl", PAPER_RECIPE, "--dry-run", "--set", f"output_dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    assert "-m verl.trainer.main_ppo" in result.stdout
    assert "algorithm.adv_estimator=grpo" in result.stdout
    assert "CODEDANCE_JUDGE_URL=http://127.0.0.1:18901/v1" in result.stdout
    assert not any(tmp_path.iterdir())  # a dry run writes nothing


def test_tool_yaml_instantiates_our_tool_through_verl(paper_recipe: RlRecipe, tmp_path: Path) -> None:
    from verl.tools.tool_registry import initialize_tools_from_config

    from codedance_cli.engines.verl.tool import CodeDanceSandboxTool

    files = RunFiles(tmp_path)
    write_verl_files(paper_recipe, files)
    (tool,) = initialize_tools_from_config(str(files.tool_config))
    assert isinstance(tool, CodeDanceSandboxTool) and TOOL_CLASS.endswith(type(tool).__name__)
    assert tool.name == "execute_python_code"
    assert tool.sandbox_config.backend == "docker" and tool.sandbox_config.timeout_s == 15
    schema = tool.tool_schema.model_dump(exclude_unset=True, exclude_none=True)
    assert schema["function"]["parameters"]["required"] == ["code"]


def test_reward_function_loads_and_scores_through_verl(paper_recipe: RlRecipe, tmp_path: Path) -> None:
    from verl.trainer.ppo.reward import get_custom_reward_fn

    files = RunFiles(tmp_path)
    recipe = paper_recipe.model_copy(deep=True)
    recipe.reward.judge_endpoint = None
    write_verl_files(recipe, files)
    config = compose_verl(verl_overrides(recipe, files))
    compute_score = get_custom_reward_fn(config)
    solution = (
        "<think>zoom</think><tool_call>{}</tool_call>user\n<tool_response>\nNameError: x\n</tool_response>\n"
        "assistant\n<think>ok</think><answer>B</answer>"
    )
    extra_info = {
        "answer_type": "choice",
        "choices": ["cat", "dog"],
        "metadata": '{"difficulty": "hard"}',
    }
    result = asyncio.run(compute_score(data_source="codedance", solution_str=solution, ground_truth="B", extra_info=extra_info))
    assert result["accuracy"] == 1.0 and result["tool_calls"] == 1.0
    assert result["tool_failed"] == 1.0 and result["tool_component"] == 0.0  # NameError: the call failed, rate 0
    assert result["score"] == pytest.approx(1.0)  # verl trains on the outcome R*a + w*f (docs/reward.md)
    assert result["tool_failures"] == "1"  # one character per call, so verl can stack the field into a batch array
    assert result["tool_errors"] == "NameError"  # what the failed calls raised, for the step statistics
    assert all(isinstance(value, float) for key, value in result.items() if key not in ("tool_failures", "tool_errors"))


def test_batch_reward_entry_point(tmp_path: Path) -> None:
    from codedance_cli.engines.verl.reward import compute_score_batch

    results = compute_score_batch(
        ["codedance", "mathvista"],
        ["<answer>red</answer>", "<answer>2</answer>"],
        ["red", "\\frac{4}{2}"],
        [{"answer_type": "text"}, {"answer_type": "number"}],
    )
    assert [round(r["score"], 6) for r in results] == [1.0, 1.2]


def test_recipe_rejects_unknown_engine_field(tmp_path: Path) -> None:
    bad = tmp_path / "rl.yaml"
    bad.write_text(f"extends: {PAPER_RECIPE}\nverl:\n  n_gpu_per_node: 4\n")
    result = run_codedance("rl", bad, "--dry-run")
    assert result.returncode == 2
    assert "n_gpu_per_node" in result.stderr and "n_gpus_per_node" in result.stderr


def test_merge_command_parses_with_verl_model_merger(paper_recipe: RlRecipe, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from verl.model_merger.base_model_merger import parse_args

    from codedance_cli.engines.verl.merge import verl_merge_command

    files = RunFiles(paper_recipe.output_dir)
    command = verl_merge_command(files, 40)
    assert command[1:3] == ["-m", "verl.model_merger"]
    monkeypatch.setattr(sys, "argv", ["verl.model_merger", *command[3:]])
    args = parse_args()
    assert (args.operation, args.backend) == ("merge", "fsdp")
    assert args.local_dir == str(files.checkpoints / "global_step_40" / "actor")
    assert args.target_dir == str(files.root / "merged" / "global_step_40")


def test_bad_inputs_are_one_line_errors(tmp_path: Path, tiny_model_dir: Path) -> None:
    missing = run_codedance(  # the model must exist: a missing model folder is reported first
        "rl", REPO_ROOT / "recipes" / "nano" / "rl.yaml", "--set", f"output_dir={tmp_path}", "--set", "dataset=/nonexistent",
        "--set", f"model={tiny_model_dir}",
    )
    assert (
        missing.returncode == 2
        and missing.stderr.strip().startswith("error: dataset: /nonexistent does not exist (make it with")
        and len(missing.stderr.strip().splitlines()) == 1
    )
    fenced = run_codedance("rl", PAPER_RECIPE, "--dry-run", "--set", "loop.prompt_version=codedance-v1")
    assert fenced.returncode == 2 and "loop.prompt_version" in fenced.stderr and len(fenced.stderr.strip().splitlines()) == 1


def test_batch_terms_and_grpo_bat_through_verls_advantage_computation() -> None:
    """A hand-built verl batch of two groups of two: our manager's batch step, then verl's own compute_advantage.

    Group a: r0 right with one working call, r1 wrong -> mu 0.5, decay 0.3, r0 score 1 + 0.3 * 1.5 = 1.45.
    Group b: r2 right with calls [fail, ok], r3 right -> mu 1, decay -0.182014, r2 score 1 + decay * 0.75.
    Non-final c over the batch: r0 [0], r2 [-0.5, 0] -> mean -1/6, std sqrt(1/18): r0 +0.707107, r2 [-1.414214,
    +0.707107]; beta 0.2. verl's GRPO on groups of two gives +-0.707107 (unbiased std) before the offsets.
    """
    import math

    import numpy as np
    import torch
    from verl import DataProto
    from verl.trainer.ppo.ray_trainer import compute_advantage

    from codedance_cli.recipes.rl import RewardConfig
    from codedance_cli.rewards.score import OutcomeScore
    from codedance_cli.engines.verl.reward import outcome_fields
    from codedance_cli.engines.verl.bat import apply_batch_terms, batch_stats

    def outcome(correct: bool, failures: list[bool]) -> OutcomeScore:
        rate = (len(failures) - sum(failures)) / len(failures) if failures else 0.0
        component = (1.5 if correct else 0.5) * rate if failures else 0.0
        return OutcomeScore(float(correct), float(correct), 0.0, False, False, None, None, failures, component)

    # responses of 10 tokens: assistant runs (1) and tool responses (0), then padding
    masks = [
        [1, 1, 1, 0, 0, 1, 1, 0, 0, 0],  # r0: call, tool, answer
        [1, 1, 1, 0, 0, 0, 0, 0, 0, 0],  # r1: answer
        [1, 1, 0, 1, 1, 0, 1, 1, 0, 0],  # r2: call, tool, call, tool, answer
        [1, 1, 1, 0, 0, 0, 0, 0, 0, 0],  # r3: answer
    ]
    valid = [7, 3, 8, 3]
    outcomes = [outcome(True, [False]), outcome(False, []), outcome(True, [True, False]), outcome(True, [])]
    response_mask = torch.tensor(masks, dtype=torch.float32)
    attention = torch.cat([torch.ones(4, 2, dtype=torch.long), (torch.arange(10) < torch.tensor(valid)[:, None]).long()], dim=1)
    rm_scores = torch.zeros(4, 10)
    rm_scores[torch.arange(4), torch.tensor(valid) - 1] = torch.tensor([o.outcome for o in outcomes])
    fields = [outcome_fields(o) for o in outcomes]
    data = DataProto.from_dict(
        tensors={"prompts": torch.zeros(4, 2, dtype=torch.long), "responses": torch.zeros(4, 10, dtype=torch.long),
                 "attention_mask": attention, "response_mask": response_mask, "rm_scores": rm_scores},
        non_tensors={key: np.array([f[key] for f in fields]) for key in fields[0]},
    )  # fmt: skip
    uids = np.array(["a", "a", "b", "b"], dtype=object)
    results = apply_batch_terms(data, uids, RewardConfig())

    decay_b = (1 + math.tanh(-2.0)) / 2 - 0.2
    stats = batch_stats(uids, results)  # what verl does not log, for the step line and rl_summary.json
    scores = np.array([1.45, 0.0, 1.0 + decay_b * 0.75, 1.0])
    assert stats == pytest.approx({"codedance/reward_std": scores.std(), "codedance/equal_groups": 0.0,
                                   "codedance/tool_calls": 0.75, "codedance/tool_failed": 1 / 3})
    assert batch_stats(np.array(["a", "a"]), results[:1] * 2)["codedance/equal_groups"] == 1.0
    errors = np.array(["NameError", "", "", ""], dtype=object)  # each rollout's ERRORS_FIELD: one failed call
    assert batch_stats(uids, results, errors)["codedance/failed/NameError"] == pytest.approx(1 / 3)
    assert data.batch["rm_scores"].sum(dim=1).tolist() == pytest.approx([1.45, 0.0, 1.0 + decay_b * 0.75, 1.0], abs=1e-6)
    assert data.batch["rm_scores"][0, 6].item() == pytest.approx(1.45)  # still at the last valid token

    data.non_tensor_batch["uid"] = uids
    data.batch["token_level_rewards"] = data.batch["rm_scores"]
    data = compute_advantage(data, adv_estimator="grpo_bat", num_repeat=2, config={"norm_adv_by_std_in_grpo": True})
    advantages = data.batch["advantages"]
    base, step = 1 / math.sqrt(2), 0.2 / math.sqrt(2)
    assert advantages[0].tolist() == pytest.approx([base + step] * 3 + [0, 0] + [base] * 2 + [0] * 3, abs=1e-5)
    assert advantages[1].tolist() == pytest.approx([-base] * 3 + [0] * 7, abs=1e-5)
    assert advantages[2].tolist() == pytest.approx([-base - 2 * step] * 2 + [0] + [-base + step] * 2 + [0] + [-base] * 2 + [0, 0], abs=1e-5)
    assert advantages[3].tolist() == pytest.approx([base] * 3 + [0] * 7, abs=1e-5)
