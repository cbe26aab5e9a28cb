"""Our verl tool against the real local sandbox, called the way verl's ToolAgentLoop calls it
(create -> execute(agent_data=...) -> release around every call, with verl's own AgentData)."""

from __future__ import annotations

import asyncio
import gc
import json
import time

import pytest

pytest.importorskip("verl")

from PIL import Image  # noqa: E402
from verl.experimental.agent_loop.tool_agent_loop import AgentData  # noqa: E402

from codedance_cli.loop.prompts import TOOL_RESPONSE_NUDGE, tool_call_text  # noqa: E402
from codedance_cli.engines.verl.chat_template import CHAT_TEMPLATE  # noqa: E402
from codedance_cli.engines.verl.reward import compute_score  # noqa: E402
from codedance_cli.engines.verl.tool import CodeDanceSandboxTool  # noqa: E402

TIMEOUT_S = 2.0


def make_tool() -> CodeDanceSandboxTool:
    config = {
        "type": "native",
        "sandbox": {"backend": "local", "workers": 1, "timeout_s": TIMEOUT_S},
        "prompt_version": "codedance-toolcall-v1",
    }
    return CodeDanceSandboxTool(config, None)


def agent_data(request_id: str, image: Image.Image | None = None) -> AgentData:
    return AgentData(
        messages=[], image_data=[image] if image is not None else None, video_data=None, audio_data=None,
        mm_processor_kwargs=None, metrics={}, request_id=request_id, tools_kwargs={},
    )  # fmt: skip


async def call(tool: CodeDanceSandboxTool, data: AgentData, code: str | None):
    """What ToolAgentLoop._call_tool does for a BaseTool."""
    instance_id, _ = await tool.create(create_kwargs={"trajectory_id": data.request_id})
    try:
        return await tool.execute(instance_id, {} if code is None else {"code": code}, agent_data=data)
    finally:
        await tool.release(instance_id)


def test_session_per_trajectory_images_back_and_cleanup() -> None:
    async def scenario():
        tool = make_tool()
        try:
            first = agent_data("traj-1", Image.new("RGB", (80, 60), "blue"))
            other = agent_data("traj-2", Image.new("RGB", (30, 30), "green"))
            response, reward, metrics = await call(tool, first, "w, h = input_image.size\nprint(w, h)")
            assert response.text == "80 60"  # the observation text alone: the chat template adds tags and nudge
            assert reward == 0.0 and not metrics["failed"]
            response, _, _ = await call(tool, first, "print(w * h)\ninput_image.crop((0, 0, 40, 30))")  # state persists
            assert "4800" in response.text
            assert len(response.image) == 1 and isinstance(response.image[0], Image.Image)
            response, _, _ = await call(tool, other, "print(w)")  # another trajectory sees none of it
            assert "NameError" in response.text
            assert tool.sessions.open_sessions == 2
            del first, other
            gc.collect()
            for _ in range(50):  # closing is scheduled on the loop when verl drops the trajectory's AgentData
                await asyncio.sleep(0.02)
                if tool.sessions.open_sessions == 0:
                    break
            assert tool.sessions.open_sessions == 0
        finally:
            await tool.close()

    asyncio.run(scenario())


def test_hanging_and_crashing_cells_become_failed_observations() -> None:
    async def scenario():
        tool = make_tool()
        try:
            data = agent_data("traj-hang", Image.new("RGB", (16, 16)))
            started = time.monotonic()
            response, reward, metrics = await call(tool, data, "while True:\n    pass")
            elapsed = time.monotonic() - started
            assert elapsed < TIMEOUT_S + tool.sessions.guard_s
            assert metrics["timed_out"] and metrics["failed"] and "Timeout" in response.text and reward == 0.0
            texts = [response.text]
            response, reward, metrics = await call(tool, data, "import os\nos._exit(3)")  # the process dies
            assert metrics["failed"] and reward == 0.0 and "Error" in response.text
            texts.append(response.text)
            response, reward, metrics = await call(tool, data, None)  # malformed call: no code argument
            assert metrics["failed"] and reward == 0.0 and "code" in response.text
            texts.append(response.text)
            response, reward, _ = await call(tool, data, "x = 1")  # ran, but showed nothing: a success by default
            assert "No explicit output" in response.text and reward == 0.0
            texts.append(response.text)
            response, reward, _ = await call(tool, data, "print('alive')")  # the trajectory goes on
            assert "alive" in response.text and reward == 0.0
            texts.append(response.text)

            # The reward reads the same failures back from the text the model saw.
            solution = "".join(f"<think>t</think><tool_call>x</tool_call><tool_response>{text}</tool_response>" for text in texts)
            result = await compute_score("codedance", solution + "<think>t</think><answer>3</answer>", "3", {"answer_type": "number"})
            assert result["tool_calls"] == 5 and result["tool_failed"] == 3 and result["accuracy"] == 1.0
        finally:
            await tool.close()

    asyncio.run(scenario())


def test_verl_hermes_parser_reads_our_tool_call_and_template_wraps_the_response(tiny_model_dir) -> None:
    """The tool-call text of our format is what verl's parser extracts; our chat template puts the tool's text in
    <tool_response> of a user turn, the nudge after it."""
    from transformers import AutoTokenizer
    from verl.experimental.agent_loop.tool_parser import ToolParser

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    code = "print(input_image.size)\nx = {'a': 1}"
    turn = "<think>measure</think>" + tool_call_text(code)
    parser = ToolParser.get_tool_parser("hermes", tokenizer)
    content, calls = asyncio.run(parser.extract_tool_calls(tokenizer.encode(turn, add_special_tokens=False), None))
    assert [call.name for call in calls] == ["execute_python_code"]
    assert json.loads(calls[0].arguments) == {"code": code} and content == "<think>measure</think>"
    messages = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": content},
        {"role": "tool", "content": "(80, 60)"},
    ]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, chat_template=CHAT_TEMPLATE)
    assert rendered.endswith(f"<|im_start|>user\n<tool_response>\n(80, 60)\n</tool_response>\n{TOOL_RESPONSE_NUDGE}<|im_end|>\n")


def test_verl_tool_agent_loop_runs_our_tool_and_reward_end_to_end(tiny_model_dir, tmp_path) -> None:
    """verl's own ToolAgentLoop (multi-turn rollout) with our tool YAML and the real sandbox; only the LLM server is
    scripted. Its output is scored the way verl's naive reward manager does (decoded response + tool extra fields)."""
    import importlib.util
    from pathlib import Path

    from hydra import compose, initialize_config_dir
    from transformers import AutoTokenizer
    from verl.experimental.agent_loop.agent_loop import DictConfigWrap, ToolListWrap
    from verl.experimental.agent_loop.tool_agent_loop import ToolAgentLoop
    from verl.tools.tool_registry import initialize_tools_from_config
    from verl.utils.dataset.rl_dataset import RLHFDataset
    from verl.workers.rollout.replica import TokenOutput

    from codedance_cli.loop.prompts import system_prompt
    from codedance_cli.recipes.rl import RlRecipe
    from codedance_cli.engines.rl_files import RunFiles
    from codedance_cli.engines.verl.command import verl_overrides, write_verl_files

    recipe = RlRecipe(
        model=str(tiny_model_dir), dataset=tmp_path / "items", output_dir=tmp_path / "run", sandbox={"workers": 1, "timeout_s": TIMEOUT_S}
    )
    files = RunFiles(recipe.output_dir)
    write_verl_files(recipe, files)
    config_dir = str(Path(importlib.util.find_spec("verl").origin).parent / "trainer" / "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        config = compose(
            config_name="ppo_trainer", overrides=verl_overrides(recipe, files) + ["actor_rollout_ref.rollout.response_length=4096"]
        )
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    turns = iter([
        "<think>compute</think>" + tool_call_text("x = 6 * 7\nprint(x)"),
        "<think>wait</think>" + tool_call_text("while True:\n    pass"),
        "<think>it printed 42</think><answer>42</answer>",
    ])  # fmt: skip

    class ScriptedServer:  # the model boundary: verl's LLM server client
        async def generate(self, request_id, prompt_ids, sampling_params, **kwargs):
            return TokenOutput(token_ids=tokenizer.encode(next(turns), add_special_tokens=False) + [end])

    async def scenario():
        (tool,) = initialize_tools_from_config(str(files.tool_config))
        agent = ToolAgentLoop(
            DictConfigWrap(config), ScriptedServer(), tokenizer, None, RLHFDataset, DictConfigWrap(config.data), tools=ToolListWrap([tool])
        )
        try:
            prompt = [{"role": "system", "content": system_prompt("codedance-toolcall-v1")}, {"role": "user", "content": "What is 6*7?"}]
            output = await agent.run({"temperature": 1.0}, raw_prompt=prompt, tools_kwargs={})
            solution = tokenizer.decode(output.response_ids, skip_special_tokens=True)
            scored = await compute_score("codedance", solution, "42", {"answer_type": "number", **output.extra_fields})
            return output, solution, scored
        finally:
            await tool.close()

    output, solution, scored = asyncio.run(scenario())
    assert output.extra_fields["tool_rewards"] == [0.0, 0.0]  # the tool gives no reward; compute_score reads the failures
    assert "<tool_response>\n42\n" in solution and "Timeout" in solution
    # a=1, f=0, calls [ok, timeout]: T = 1.5 * 0.5; c = [0 + 0.2 * -0.5, -0.5, 0] = [-0.1, -0.5, 0]
    assert scored["accuracy"] == 1.0 and scored["format"] == 0.0 and scored["tool_failed"] == 1.0
    assert scored["tool_component"] == pytest.approx(0.75) and scored["score"] == pytest.approx(1.0)


def test_trajectory_scoped_instance_without_agent_data_closes_on_release() -> None:
    """Callers that create one instance per trajectory (verl's older SGLang rollout) get one session per instance."""

    async def scenario():
        tool = make_tool()
        try:
            instance_id, _ = await tool.create(create_kwargs={"trajectory_id": "legacy-1"})
            first, _, _ = await tool.execute(instance_id, {"code": "y = 5\nprint(y)"})
            second, _, _ = await tool.execute(instance_id, {"code": "print(y * 2)"})
            assert (first.text, second.text) == ("5", "10")
            assert tool.sessions.open_sessions == 1
            await tool.release(instance_id)
            assert tool.sessions.open_sessions == 0
        finally:
            await tool.close()

    asyncio.run(scenario())
