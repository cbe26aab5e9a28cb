"""`codedance rl` on ms-swift: the scheduler drives our real sandbox through ms-swift's own multi-turn driver
(with recorded assistant turns standing in for the model), the reward plugin scores through ms-swift's reward
code, and `recipes/nano/rl.yaml` runs real GRPO steps on CPU with the tiny model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

pytest.importorskip("swift")

from PIL import Image, ImageDraw  # noqa: E402

from codedance_cli.loop.prompts import tool_call_text  # noqa: E402
from codedance_cli.recipes.rl import RewardConfig  # noqa: E402
from codedance_cli.trajectory.schema import Trajectory, encode_image  # noqa: E402
from codedance_cli.trajectory.store import write_trajectories  # noqa: E402
from conftest import REPO_ROOT, run_codedance  # noqa: E402

NANO_RECIPE = REPO_ROOT / "recipes" / "nano" / "rl.yaml"


def counting_items(count: int = 4) -> list[Trajectory]:
    items = []
    for index in range(count):
        image = Image.new("RGB", (56, 56), "white")
        draw = ImageDraw.Draw(image)
        for square in range(index + 1):
            draw.rectangle((4 + 12 * square, 20, 12 + 12 * square, 36), fill="red")
        items.append(
            Trajectory(
                task_id=f"count-{index}", question="How many red squares are there?", images=[encode_image(image)],
                ground_truth=str(index + 1), answer_type="number", metadata={"source": "nano-count", "pass_rate": index / count},
            )
        )  # fmt: skip
    return items


@pytest.fixture
def settings_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    settings = {
        "sandbox": {"backend": "local", "workers": 1, "timeout_s": 2},
        "loop": {"prompt_version": "codedance-toolcall-v1", "max_turns": 4},
    }
    path = tmp_path / "rl_settings.json"
    path.write_text(json.dumps(settings))
    monkeypatch.setenv("CODEDANCE_RL_SETTINGS", str(path))
    return path


def _scripted_rollout(turns: dict[str, list[str]], tokenizer):
    """The model boundary only: each request gets its next recorded assistant turn (with its real token ids)."""
    from swift.infer_engine.protocol import ChatCompletionResponse, ChatCompletionResponseChoice, ChatMessage, RolloutOutput, UsageInfo

    position: dict[str, int] = {}

    def rollout(requests, request_config):
        outputs = []
        for request in requests:
            index = position.get(request.uuid, 0)
            position[request.uuid] = index + 1
            text = turns[request.uuid][index]
            ids = tokenizer.encode(text, add_special_tokens=False)
            choice = ChatCompletionResponseChoice(
                index=0, message=ChatMessage(role="assistant", content=text), finish_reason="stop", token_ids=ids
            )
            outputs.append(
                RolloutOutput(response=ChatCompletionResponse(model="scripted", choices=[choice], usage=UsageInfo(0, len(ids), len(ids))))
            )
        return outputs

    return rollout


def test_scheduler_runs_code_in_sandbox_through_swift_multi_turn_driver(settings_env: Path, tiny_model_dir: Path) -> None:
    from swift.infer_engine.protocol import RequestConfig, RolloutInferRequest
    from swift.rollout.agent_loop import run_multi_turn
    from transformers import AutoTokenizer

    from codedance_cli.trajectory.media import data_url
    from codedance_cli.loop.grammar import call_failures
    from codedance_cli.engines.swift.reward import rollout_response
    from codedance_cli.engines.swift.scheduler import CodeDanceSandboxScheduler

    image = counting_items(3)[2].images[0]
    turns = {
        "solves": [
            "<think>count</think>"
            + tool_call_text(
                "import numpy as np\nred = (np.array(input_image)[:, :, 1] < 100)\nn = int(red.any(axis=0).sum() // 9)\nprint(n)"
            ),
            "<think>show it</think>" + tool_call_text("input_image.crop((0, 16, 48, 40))"),
            "<think>3 squares</think><answer>3</answer>",
        ],
        "hangs": [
            "<think>loop</think>" + tool_call_text("while True:\n    pass"),
            "<think>again</think>" + tool_call_text("print(n)"),
            "<think>give up</think><answer>2</answer>",
        ],
        "answers": ["<think>easy</think><answer>3</answer>"],
    }
    requests = [
        RolloutInferRequest(messages=[{"role": "user", "content": "<image>How many?"}], images=[data_url(image)], uuid=uuid)
        for uuid in turns
    ]
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    scheduler = CodeDanceSandboxScheduler(max_turns=4, tokenizer=tokenizer)
    try:
        rollout = _scripted_rollout(turns, tokenizer)
        outputs = run_multi_turn(requests, rollout(requests, None), scheduler, rollout, RequestConfig(), max_turns=4)
    finally:
        scheduler.close()
    solved, hung, direct = outputs
    assert len(solved.rollout_infos["codedance_turns"]) == 3 and len(solved.rollout_infos["codedance_observations"]) == 2
    assert call_failures(rollout_response(None, solved.rollout_infos, "")) == [False, False]
    user_turns = [m["content"] for m in solved.messages if m["role"] == "user"][1:]
    assert "3" in user_turns[0] and "<tool_response>" in user_turns[0]
    assert "<image>" in user_turns[1] and len(solved.rollout_infos["images"]) == 2  # the crop came back as an image
    # laid out as the SFT export writes it (observation_content): the image right before the closing tag, then the nudge
    assert "\n<image></tool_response>\n" in user_turns[1] and "<image>\n</tool_response>" not in user_turns[1]
    assert solved.rollout_infos["num_turns"] == 3
    assert call_failures(rollout_response(None, hung.rollout_infos, "")) == [True, True]  # timeout, then state lost
    assert "Timeout" in [m["content"] for m in hung.messages if m["role"] == "user"][1]
    assert direct.rollout_infos["num_turns"] == 1 and direct.rollout_infos["codedance_observations"] == []
    assert scheduler.sessions.open_sessions == 0

    # What GRPO then trains on: the scheduler's conversation (tool images included) encodes with the template.
    import codedance_cli.engines.swift.grpo_plugin  # noqa: F401  (registers codedance_qwen2_5_vl)
    from swift.model import get_processor
    from swift.template import get_template

    processor = get_processor(str(tiny_model_dir), model_type="codedance_qwen2_5_vl")
    template = get_template(processor, template_type="codedance_qwen2_5_vl")
    encoded = template.encode({"messages": solved.messages, "images": solved.rollout_infos["images"]})
    assert encoded["image_grid_thw"].shape[0] == 2  # the input image and the crop the code showed
    assert encoded["input_ids"].count(template.image_token_id) == int(encoded["image_grid_thw"].prod(dim=1).sum()) // 4


def test_reward_plugin_scores_a_group_through_swift_reward_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ms-swift's own reward code calls our ORM on a batch: the group (prompt_id) sets R_seq, the batch sets R_turn."""
    from swift.rl_core.grpo_algorithm import compute_rewards_per_func

    from codedance_cli.rewards.config_file import load_reward_config
    from codedance_cli.engines.swift.reward import CodeDanceReward

    config_path = tmp_path / "reward.json"
    config_path.write_text(RewardConfig().model_dump_json())
    monkeypatch.setenv("CODEDANCE_REWARD_CONFIG", str(config_path))
    monkeypatch.setenv("CODEDANCE_REWARD_LOG", str(tmp_path / "rewards.jsonl"))
    load_reward_config.cache_clear()

    class Sample:  # the two members compute_rewards_per_func reads from ms-swift's GRPOSample
        def __init__(self, infos, prompt_id):
            self.infos, self.prompt_id = infos, prompt_id
            # earlier assistant turns reach the reward as token ids, as ms-swift 4.6 hands them over
            self.messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": [1, 2, 3]}]

        def to_reward_row(self):
            columns = {"solution": "3", "answer_type": "number", "choices": "[]", "question": "How many?", "metadata": "{}"}
            return {"messages": self.messages, "rollout_infos": self.infos, "prompt_id": self.prompt_id, "data_source": "nano", **columns}

    call = "<think>a</think>" + tool_call_text("print(3)")
    right = {"codedance_turns": [call, "<think>b</think><answer>3</answer>"], "codedance_observations": ["<tool_response>\n3\n</tool_response>"]}
    failed = {
        "codedance_turns": [call, "<think>b</think><answer>2</answer>"],
        "codedance_observations": ["<tool_response>\nError: NameError: x\n</tool_response>"],
    }
    plain = {"codedance_turns": ["no tags 5"], "codedance_observations": []}
    samples = [Sample(right, "p0"), Sample(failed, "p0"), Sample(plain, "p1")]
    rewards = compute_rewards_per_func(samples, [CodeDanceReward()], None, device="cpu")
    decay = (1 + math.tanh(4 * (0.5 - 0.5))) / 2 - 0.2  # group p0: outcomes 1 and 0, mu = 0.5, decay 0.3
    assert rewards[:, 0].tolist() == pytest.approx([1.0 + decay * 1.5, 0.0, -0.2])
    # c over the batch: [0] and [-0.5] (non-final), mean -0.25, std 0.25 -> +1 and -1, times beta 0.2
    assert right["codedance_turn_offsets"] == pytest.approx([0.2, 0.0])
    assert failed["codedance_turn_offsets"] == pytest.approx([-0.2, 0.0])
    logged = [json.loads(line) for line in (tmp_path / "rewards.jsonl").read_text().splitlines()]
    assert [entry["tool_calls"] for entry in logged] == [1.0, 1.0, 0.0]
    assert [entry["tool_errors"] for entry in logged] == [[], ["NameError"], []]
    assert [(entry["group"], entry["family"]) for entry in logged] == [("p0", "nano"), ("p0", "nano"), ("p1", "nano")]
    load_reward_config.cache_clear()


def test_trainer_adds_each_turns_offset_to_its_tokens() -> None:
    import torch

    from codedance_cli.engines.swift.trainer import add_turn_offsets

    mask = torch.tensor([0, 1, 1, 1, 0, 0, 1, 1, 0])  # turn 0: 3 tokens, an observation, turn 1: 2 tokens, padding
    advantages = torch.full((9,), 0.5)
    assert add_turn_offsets(advantages, mask, [3, 2], [0.2, 0.0]) == 3
    assert advantages.tolist() == pytest.approx([0.5, 0.7, 0.7, 0.7, 0.5, 0.5, 0.5, 0.5, 0.5])
    cut = torch.full((9,), 0.0)  # truncation kept only the last 4 trained tokens: turns line up from the end
    assert add_turn_offsets(cut, torch.tensor([0, 0, 0, 1, 1, 0, 0, 1, 1]), [3, 2, 2], [-0.1, 0.3, 0.0]) == 2
    assert cut.tolist() == pytest.approx([0, 0, 0, 0.3, 0.3, 0, 0, 0, 0])


@pytest.mark.slow
def test_nano_recipe_trains_two_grpo_steps_on_cpu(tiny_model_dir: Path, tmp_path: Path) -> None:
    items = tmp_path / "items"
    write_trajectories(items, counting_items())
    out = tmp_path / "run"
    small = ["--set", "train.max_steps=2", "--set", "train.save_steps=2", "--set", "swift.max_completion_length=24"]
    args = ["--set", f"model={tiny_model_dir}", "--set", f"dataset={items}", "--set", f"output_dir={out}", *small]
    result = run_codedance("rl", NANO_RECIPE, *args, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    logged = [json.loads(line) for line in (out / "checkpoints" / "logging.jsonl").read_text().splitlines()]
    steps = [entry for entry in logged if "rewards/CodeDanceReward/mean" in entry]
    assert len(steps) == 2  # two GRPO steps, each with our reward computed
    assert all("codedance/turn_offset_tokens" in entry for entry in steps)  # our trainer subclass ran the steps
    for entry in steps:  # where a step's seconds go: generation with tool calls, sandbox calls in it, reward; the rest is the update
        assert 0 < entry["codedance/rollout_s"] < entry["train_speed(s/it)"] * 2 and entry["codedance/reward_s"] >= 0
        assert 0 <= entry["codedance/sandbox_call_s"]
    rewards = [json.loads(line) for line in (out / "rewards.jsonl").read_text().splitlines()]
    assert len(rewards) == 2 * 8  # steps x completions per step (two prompts x rollout_n 4)
    assert all(set(entry) >= {"score", "outcome", "accuracy", "format", "sequence_term", "turn_offsets"} for entry in rewards)
    assert {entry["family"] for entry in rewards} == {"nano-count"}  # no family in these items: their source
    checkpoint = out / "checkpoints" / "checkpoint-2"
    assert (checkpoint / "model.safetensors").is_file() and (checkpoint / "trainer_state.json").is_file()
    assert (out / "data" / "train.jsonl").is_file() and (out / "reward.json").is_file()
    assert (out / "last").resolve() == checkpoint.resolve()  # what eval / infer load next
    processor_config = json.loads((checkpoint / "processor_config.json").read_text())
    assert processor_config["processor_class"] == "Qwen2_5_VLProcessor" and "video_processor" in processor_config
    assert json.loads((checkpoint / "codedance_pixel_budget.json").read_text())["max_pixels"] == 50176  # what RL saw
    swift_args = json.loads((out / "checkpoints" / "args.json").read_text())  # what ms-swift parsed
    assert swift_args["loss_type"] == "dapo"  # train.loss_agg_mode token-mean, verl's default
    assert (swift_args["torch_dtype"], swift_args["bf16"], swift_args["fp16"]) == ("float32", False, False)  # plain float32 on CPU
    summary = json.loads((out / "rl_summary.json").read_text())  # what the demo checks: was there a learning signal?
    assert summary["steps"] == 2 and set(summary) >= {"first_reward", "last_reward_std", "mean_frac_reward_zero_std", "trained"}
    assert set(summary["tools"]) == {"calls_per_rollout", "failed_share", "failure_kinds"}  # from rewards.jsonl
    assert "tool calls a rollout: " in result.stdout
    assert "GRPO steps: 2" in result.stdout
    assert "swift rlhf: step 2/2, reward " in result.stderr  # piped: one plain line per step, from logging.jsonl
    assert "'global_step/max_steps'" not in result.stdout + result.stderr  # ms-swift's own printout stays in swift.log
    again = run_codedance("rl", NANO_RECIPE, *args)
    assert again.returncode == 0 and "nothing to do" in again.stdout  # a finished run is not trained past max_steps
    assert "GRPO steps: 2" in again.stdout  # and says again what it did


@pytest.mark.slow
def test_dynamic_sampling_generations_count_as_rollout_time(tiny_model_dir: Path, tmp_path: Path) -> None:
    """ms-swift's `--dynamic_sample` (DAPO) generates again from inside scoring to replace groups whose rewards are
    all equal. A random model scores -0.2 everywhere, so every resample happens: the step generates 1 + 1 batches,
    the reward sees both, and the seconds of the second go to `rollout_s`, not `reward_s`."""
    items = tmp_path / "items"
    write_trajectories(items, counting_items())
    out = tmp_path / "run"
    result = run_codedance(
        "rl", NANO_RECIPE, "--set", f"model={tiny_model_dir}", "--set", f"dataset={items}", "--set", f"output_dir={out}",
        "--set", "train.max_steps=1", "--set", "train.save_steps=1", "--set", "swift.max_completion_length=24",
        "--set", "swift.extra_args=[--dynamic_sample, 'true', --max_resample_times, '1']", timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "std=0 groups present after 1 retries" in (out / "swift.log").read_text()
    step = next(json.loads(line) for line in (out / "checkpoints" / "logging.jsonl").read_text().splitlines() if "reward" in line)
    assert step["codedance/generations"] == 2.0
    assert 0 <= step["codedance/reward_s"] < step["codedance/rollout_s"] < step["step_time"]
    assert len((out / "rewards.jsonl").read_text().splitlines()) == 2 * 8  # both batches scored, 8 completions each


@pytest.mark.parametrize(
    ("zero_std", "grad_norms", "trained"),
    [([1.0, 1.0], [0.3, 0.2], False), ([0.5, 1.0], [0.0, 0.0], False), ([1.0, 0.75], [0.0, 0.4], True)],
)
def test_summary_flags_a_run_without_learning_signal(tmp_path: Path, zero_std, grad_norms, trained: bool) -> None:
    from codedance_cli.engines.swift.grpo_summary import summarize_swift_log

    log = tmp_path / "logging.jsonl"
    steps = [{"reward": -0.2, "reward_std": 0.0, "frac_reward_zero_std": z, "grad_norm": g} for z, g in zip(zero_std, grad_norms)]
    log.write_text("\n".join(json.dumps(step) for step in steps) + "\n" + json.dumps({"train_runtime": 3.0}) + "\n")
    summary = summarize_swift_log(log)
    assert summary is not None and summary.steps == 2 and summary.trained is trained
    assert ("NO LEARNING SIGNAL" in summary.lines()[-1]) is not trained
