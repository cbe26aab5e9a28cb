"""verl's own `ToolAgentLoop` ("tool_agent"), built the way verl's AgentLoopWorker builds it, runs one rollout of a
procedural item end to end: our export (`export_verl.verl_row`) read by verl's RLHFDataset, our tool YAML loaded by
verl's tool registry (the real local sandbox), our tiny model's tokenizer and processor with the chat template
`codedance rl` hands verl (set as verl's AgentLoopWorker sets it), verl's reward manager calling our `compute_score`. The only stand-in is the LLM server (vLLM does not run here): it answers with a
scripted tool call in our tool-call format, then an answer. No Ray, no GPU."""

from __future__ import annotations

import asyncio
import gc
import importlib.machinery
import importlib.util
import json
import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("verl")

import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402

from codedance_cli.data.export_verl import export_verl  # noqa: E402
from codedance_cli.engines.rl_files import RunFiles  # noqa: E402
from codedance_cli.engines.verl.bat import turn_runs  # noqa: E402
from codedance_cli.engines.sandbox_sessions import SandboxSessions  # noqa: E402
from codedance_cli.engines.verl.chat_template import CHAT_TEMPLATE  # noqa: E402
from codedance_cli.engines.verl.command import verl_overrides, write_verl_files  # noqa: E402
from codedance_cli.loop.format import build_messages, task_messages  # noqa: E402
from codedance_cli.loop.prompts import TOOL_NAME, TOOL_RESPONSE_NUDGE, TOOLCALL_VERSION, tool_call_text  # noqa: E402
from codedance_cli.models.qwen_processor import load_processor  # noqa: E402
from codedance_cli.procedural.registry import generate_item, item_to_task  # noqa: E402
from codedance_cli.procedural.solve import answer_turn_text, code_turn_text  # noqa: E402
from codedance_cli.recipes import load_recipe  # noqa: E402
from codedance_cli.recipes.common import LoopConfig  # noqa: E402
from codedance_cli.trajectory.schema import Trajectory, Turn  # noqa: E402
from conftest import REPO_ROOT  # noqa: E402

VERL_CONFIG_DIR = str(Path(importlib.util.find_spec("verl").origin).parent / "trainer" / "config")
RECIPE = REPO_ROOT / "recipes" / "nano" / "rl_verl.yaml"


def import_qwen_vl_utils() -> None:
    """verl's RLHFDataset reads a prompt's images with qwen_vl_utils, which imports torchvision at the top for its
    video readers. This venv cannot have torchvision (PyPI's wheels are CUDA builds); images go through PIL only
    (`fetch_image`). Without torchvision, import it once behind an empty torchvision, then take that away again."""
    if importlib.util.find_spec("torchvision") is not None or "qwen_vl_utils.vision_process" in sys.modules:
        return
    names = ("torchvision", "torchvision.io", "torchvision.transforms")
    stubs = {name: types.ModuleType(name) for name in names}
    for name, module in stubs.items():
        module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    stubs["torchvision"].__version__ = "0.0.0"
    stubs["torchvision"].io, stubs["torchvision"].transforms = stubs["torchvision.io"], stubs["torchvision.transforms"]
    stubs["torchvision.transforms"].InterpolationMode = types.SimpleNamespace(BICUBIC="bicubic")
    sys.modules.update(stubs)
    try:
        importlib.import_module("qwen_vl_utils.vision_process")
    finally:
        for name in names:
            sys.modules.pop(name, None)


@dataclass
class Setup:
    config: Any
    files: RunFiles
    task: Trajectory
    row: dict[str, Any]
    tokenizer: Any
    processor: Any
    hf_model_type: str
    loop: LoopConfig


@pytest.fixture(scope="module")
def setup(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Setup:
    from transformers import AutoTokenizer
    from verl.utils.dataset.rl_dataset import RLHFDataset

    out = tmp_path_factory.mktemp("verl-agent-loop")
    recipe = load_recipe(RECIPE, [f"output_dir={out}", f"model={tiny_model_dir}", "sandbox.workers=1"], expect_stage="rl")
    files = RunFiles(recipe.output_dir)
    write_verl_files(recipe, files)  # reward.json and the tool YAML, as `codedance rl` writes them
    task = item_to_task(generate_item(0, 0, ["counting"]), 0, 0)
    assert task.images and task.ground_truth
    export_verl(out / "unused", files.train, tasks=[task])
    with initialize_config_dir(config_dir=VERL_CONFIG_DIR, version_base=None):
        config = compose(config_name="ppo_trainer", overrides=verl_overrides(recipe, files))
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    processor = load_processor(str(tiny_model_dir))
    # what verl's AgentLoopWorker does with actor_rollout_ref.model.custom_chat_template (agent_loop.py)
    assert config.actor_rollout_ref.model.custom_chat_template == CHAT_TEMPLATE
    processor.chat_template = tokenizer.chat_template = config.actor_rollout_ref.model.custom_chat_template
    import_qwen_vl_utils()
    dataset = RLHFDataset([str(files.train)], tokenizer, config.data, processor)  # what the trainer feeds the workers
    assert len(dataset) == 1
    row = {key: value for key, value in dataset[0].items() if key != "dummy_tensor"}  # the batch's non-tensor fields
    hf_model_type = json.loads((tiny_model_dir / "config.json").read_text())["model_type"]
    return Setup(config, files, task, row, tokenizer, processor, hf_model_type, recipe.loop)


class ScriptedServer:
    """Stands in for verl's LLMServerClient: each `generate` returns the next scripted assistant turn as token ids,
    ending with <|im_end|> as vLLM's output does when the model stops."""

    def __init__(self, tokenizer: Any, turns: list[str]) -> None:
        self.tokenizer, self.turns, self.calls = tokenizer, list(turns), []
        self.end = tokenizer.convert_tokens_to_ids("<|im_end|>")

    async def generate(self, request_id: str, *, prompt_ids: list[int], sampling_params: dict[str, Any],
                       image_data: list[Any] | None = None, video_data: list[Any] | None = None, **kwargs: Any):
        from verl.workers.rollout.replica import TokenOutput

        self.calls.append({"request_id": request_id, "prompt_ids": list(prompt_ids), "image_data": list(image_data or []),
                           "sampling_params": sampling_params})  # fmt: skip
        text = self.turns[len(self.calls) - 1]
        return TokenOutput(token_ids=self.tokenizer.encode(text, add_special_tokens=False) + [self.end], stop_reason="completed")


async def rollout(setup: Setup, server: ScriptedServer):
    """One rollout as verl's AgentLoopWorker runs it (tools from the tool YAML, the loop instantiated from the registry),
    scored by verl's naive reward manager with our compute_score; returns (output, reward result, the tool)."""
    import hydra
    import numpy as np
    from verl import DataProto
    from verl.experimental.agent_loop.agent_loop import DictConfigWrap, ToolListWrap, _agent_loop_registry
    from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager
    from verl.tools.tool_registry import load_all_tools
    from verl.trainer.ppo.reward import get_custom_reward_fn
    from verl.utils.dataset.rl_dataset import get_dataset_class

    config = setup.config
    rollout_config = config.actor_rollout_ref.rollout
    tools = load_all_tools(tool_config_path=rollout_config.multi_turn.tool_config_path, function_tool_path=None)
    agent_loop = hydra.utils.instantiate(
        config=_agent_loop_registry[rollout_config.agent.default_agent_loop],
        trainer_config=DictConfigWrap(config=config), server_manager=server, tokenizer=setup.tokenizer,
        processor=setup.processor, hf_model_type=setup.hf_model_type, dataset_cls=get_dataset_class(config.data),
        data_config=DictConfigWrap(config.data), tools=ToolListWrap(tools),
    )  # fmt: skip
    sampling_params = {"temperature": rollout_config.temperature, "top_p": rollout_config.top_p, "top_k": rollout_config.top_k,
                       "repetition_penalty": 1.0, "logprobs": rollout_config.calculate_log_probs}  # fmt: skip
    try:
        output = await agent_loop.run(sampling_params, **setup.row)
        prompts, responses = torch.tensor([output.prompt_ids]), torch.tensor([output.response_ids])
        attention_mask = torch.ones(1, prompts.size(1) + responses.size(1), dtype=torch.int64)  # unpadded: all valid
        fields = {"data_source": setup.row["data_source"], "reward_model": setup.row["reward_model"],
                  "extra_info": dict(setup.row["extra_info"]), "__num_turns__": output.num_turns}  # fmt: skip
        batch = DataProto.from_dict(
            tensors={"prompts": prompts, "responses": responses, "attention_mask": attention_mask},
            non_tensors={key: np.array([value], dtype=object) for key, value in fields.items()},
        )
        manager = NaiveRewardManager(config, setup.tokenizer, get_custom_reward_fn(config))
        reward = await manager.run_single(batch)
        gc.collect()  # the trajectory is over: its sandbox session closes when verl's AgentData goes
        for _ in range(50):
            if tools[0].sessions.open_sessions == 0:
                break
            await asyncio.sleep(0.02)
        return output, reward, tools[0]
    finally:
        await tools[0].close()


def collapse_image_pads(text: str) -> str:
    """The processor expands one <|image_pad|> into one per image token; the chat template writes one."""
    return re.sub(r"(?:<\|image_pad\|>)+", "<|image_pad|>", text)


@pytest.mark.parametrize(
    ("code", "observed", "failed"),
    [("print(21*2)", "\n42\n", "0"), ("print(input_image.size)\n1/0", "ZeroDivisionError", "1"),
     ("print('crop')\ninput_image.crop((0, 0, 24, 16))", "crop\n[1 image attached]\n<|vision_start|>", "0")],
    ids=["ok", "raises", "image"],
)  # fmt: skip
def test_tool_agent_loop_rollout_with_our_tool_data_and_reward(setup: Setup, code: str, observed: str, failed: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    tokenizer, task = setup.tokenizer, setup.task
    call_turn = code_turn_text("Count them with code.", code, TOOLCALL_VERSION)
    answer_turn = answer_turn_text("The code confirms it.", task.ground_truth)
    assert tool_call_text(code) in call_turn  # the text the SFT data teaches
    server = ScriptedServer(tokenizer, [call_turn, answer_turn])
    observations = []  # what the sandbox returned, to render the SFT form of this very result
    run = SandboxSessions.run

    async def recording_run(self: SandboxSessions, *args: Any, **kwargs: Any):
        observations.append(await run(self, *args, **kwargs))
        return observations[-1]

    monkeypatch.setattr(SandboxSessions, "run", recording_run)

    output, reward, tool = asyncio.run(rollout(setup, server))

    # The prompt: verl rendered our exported system prompt with the tool schema, exactly as SFT shows it (one tool list).
    assert len(server.calls) == 2 and server.calls[0]["request_id"] == server.calls[1]["request_id"]
    prompt_text = tokenizer.decode(output.prompt_ids)
    assert server.calls[0]["prompt_ids"] == output.prompt_ids
    assert TOOL_NAME in prompt_text
    assert prompt_text.count("# Tools") == 1, "two tool lists: verl's tools= must not add a second"
    sft_prompt = setup.processor.apply_chat_template(task_messages(task, TOOLCALL_VERSION), tokenize=False, add_generation_prompt=True)
    assert collapse_image_pads(prompt_text) == sft_prompt

    # The images: the input read from our parquet by verl's dataset, sent to the server, expanded into its image
    # tokens; an image the code showed follows it.
    images = output.multi_modal_data["images"]
    shown = 1 if "image attached" in observed else 0
    assert len(images) == 1 + shown and server.calls[0]["image_data"] == images[:1] and server.calls[1]["image_data"] == images
    grid = setup.processor.image_processor(images=images[:1], return_tensors="pt")["image_grid_thw"]
    image_pad = tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert output.prompt_ids.count(image_pad) == int(grid.prod()) // setup.processor.image_processor.merge_size**2

    # The response: two assistant turns (mask 1) around our sandbox's tool response (mask 0).
    runs = turn_runs(torch.tensor(output.response_mask))
    assert len(runs) == 2 and len(output.response_mask) == len(output.response_ids)
    (first_start, first_end), (second_start, second_end) = runs
    assert (first_start, second_end) == (0, len(output.response_ids))
    assert tokenizer.decode(output.response_ids[first_start:first_end]) == call_turn + "<|im_end|>"
    assert tokenizer.decode(output.response_ids[second_start:second_end]) == answer_turn + "<|im_end|>"
    if shown:  # the shown image's tokens sit in the tool response, as many as the processor makes for it
        grid = setup.processor.image_processor(images=images[1:], return_tensors="pt")["image_grid_thw"]
        assert output.response_ids[first_end:second_start].count(image_pad) == int(grid.prod()) // setup.processor.image_processor.merge_size**2
    assert image_pad not in output.response_ids[:first_end] + output.response_ids[second_start:]
    tool_text = collapse_image_pads(tokenizer.decode(output.response_ids[first_end:second_start]))
    # ... is the SFT rendering of that observation: a user turn, the nudge after </tool_response>
    (obs,) = observations
    sft_context = setup.processor.apply_chat_template(
        build_messages(task, [Turn(text=call_turn, code=code, observation=obs)], TOOLCALL_VERSION, setup.loop),
        tokenize=False, add_generation_prompt=True,
    )
    assert sft_context.startswith(sft_prompt + call_turn + "<|im_end|>")
    assert tool_text == sft_context[len(sft_prompt + call_turn + "<|im_end|>"):]
    assert tool_text.startswith("\n<|im_start|>user\n<tool_response>\n")
    assert tool_text.endswith(f"</tool_response>\n{TOOL_RESPONSE_NUDGE}<|im_end|>\n<|im_start|>assistant\n")
    assert observed in tool_text
    if failed == "1":  # the sandbox saw the image verl passed to the tool (agent_data.image_data)
        assert f"({images[0].width}, {images[0].height})" in tool_text
    assert server.calls[1]["prompt_ids"] == output.prompt_ids + output.response_ids[:second_start]
    assert tool.sessions.open_sessions == 0  # the trajectory's sandbox session closed once verl dropped it

    # The reward: verl's naive reward manager decodes the response and calls our compute_score.
    scores = reward["reward_extra_info"]
    assert scores["accuracy"] == 1.0 and scores["tool_calls"] == 1.0
    assert scores["tool_failed"] == float(failed) and scores["tool_failures"] == failed
    assert reward["reward_score"] == scores["score"] and scores["score"] == pytest.approx(1.0)  # R*a + w*f, f = 0 here
