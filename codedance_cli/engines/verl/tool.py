"""verl tool `execute_python_code` backed by our sandbox (named in the tool YAML `codedance rl` writes).

verl's tool agent loop calls `create -> execute -> release` around *every* tool
call and passes its per-trajectory `agent_data` to `execute`; the sandbox session
is therefore keyed by `agent_data.request_id` (one session per trajectory, so
variables persist across calls) and closed when that `agent_data` is garbage
collected, with an idle timeout as the backstop. Images the code shows go back
as multimodal tool responses; errors and timeouts come back as text the model
reads, never as exceptions. The response text is the loop's observation text alone: our chat template
(chat_template.py, which `codedance rl` hands verl) wraps it in `<tool_response>…</tool_response>` of a user turn
and adds the release's nudge after the closing tag, as the SFT data shows results. The reward reads each call's
failure back from those blocks of the rollout text (the one grammar of a turn), so the tool returns no reward of its
own (verl would only file it under `tool_rewards`, which nothing reads).

Tool YAML `config` keys: `type: native`, `sandbox` (SandboxConfig fields),
`prompt_version`, `observation_max_pixels`, `max_observation_images`,
`silent_cell_fails`, `session_idle_s`.
"""

from __future__ import annotations

import asyncio
import io
import weakref
from typing import Any
from uuid import uuid4

from PIL import Image
from verl.tools.base_tool import BaseTool
from verl.tools.schemas import OpenAIFunctionToolSchema, ToolResponse

from codedance_cli.loop.format import observation_text
from codedance_cli.loop.grammar import observation_failed
from codedance_cli.loop.prompts import TOOL_NAME, TOOLCALL_VERSION, is_toolcall
from codedance_cli.recipes.common import LoopConfig, SandboxConfig
from codedance_cli.engines.sandbox_sessions import SandboxSessions, error_observation
from codedance_cli.engines.tool_schema import tool_schema_dict
from codedance_cli.trajectory.media import fit_image
from codedance_cli.trajectory.schema import Observation


def default_tool_schema() -> OpenAIFunctionToolSchema:
    """The function schema the model was trained on (codedance-toolcall-v1)."""
    return OpenAIFunctionToolSchema.model_validate(tool_schema_dict())


class CodeDanceSandboxTool(BaseTool):
    """Runs the model's code cells in our sandbox, one session per trajectory."""

    def __init__(self, config: dict, tool_schema: OpenAIFunctionToolSchema | None = None) -> None:
        self.tool_schema = tool_schema or default_tool_schema()
        super().__init__(config, self.tool_schema)
        loop_defaults = LoopConfig()
        self.sandbox_config = SandboxConfig.model_validate(config.get("sandbox") or {})
        self.prompt_version = config.get("prompt_version", TOOLCALL_VERSION)
        if not is_toolcall(self.prompt_version):
            raise ValueError(f"prompt_version {self.prompt_version!r}: verl parses <tool_call> (hermes); use {TOOLCALL_VERSION}")
        self.max_pixels = int(config.get("observation_max_pixels", loop_defaults.observation_max_pixels))
        self.max_images = int(config.get("max_observation_images", loop_defaults.max_observation_images))
        self.silent_fails = bool(config.get("silent_cell_fails", False))
        self.sessions = SandboxSessions(self.sandbox_config, idle_s=float(config.get("session_idle_s", 1800.0)))
        self._instances: dict[str, dict[str, Any]] = {}
        self._finalized: set[str] = set()

    def get_openai_tool_schema(self) -> OpenAIFunctionToolSchema:
        return self.tool_schema

    async def create(self, instance_id: str | None = None, **kwargs: Any) -> tuple[str, ToolResponse]:
        instance_id = instance_id or uuid4().hex
        self._instances[instance_id] = {"create_kwargs": dict(kwargs.get("create_kwargs") or {}), "key": None, "per_call": True}
        return instance_id, ToolResponse()

    async def execute(self, instance_id: str, parameters: dict[str, Any], **kwargs: Any) -> tuple[ToolResponse, float, dict]:
        agent_data = kwargs.get("agent_data")
        instance = self._instances.setdefault(instance_id, {"create_kwargs": {}, "key": None, "per_call": True})
        create_kwargs = instance["create_kwargs"]
        key = str(getattr(agent_data, "request_id", None) or create_kwargs.get("trajectory_id") or instance_id)
        instance["key"], instance["per_call"] = key, agent_data is not None
        code = parameters.get("code") if isinstance(parameters, dict) else None
        if not isinstance(code, str) or not code.strip():
            obs = error_observation("BadToolCall", f"{TOOL_NAME} needs a non-empty string argument 'code'")
        else:
            self._close_with(agent_data, key)
            obs = await self.sessions.run(key, code, lambda: self._input_images(create_kwargs, agent_data))
        response = observation_response(obs, self.max_pixels, self.max_images)
        failed = observation_failed(response.text or "", silent_fails=self.silent_fails)
        metrics = {"failed": failed, "timed_out": obs.timed_out, "error_type": obs.error_type, "duration_s": obs.duration_s}
        return response, 0.0, metrics

    async def calc_reward(self, instance_id: str, **kwargs: Any) -> float:
        return 0.0

    async def release(self, instance_id: str, **kwargs: Any) -> None:
        """Per-call release (verl's agent loop) keeps the session; a caller without agent_data, whose
        instance spans the whole trajectory (create once, execute many), ends the session here."""
        instance = self._instances.pop(instance_id, None)
        if instance is not None and instance["key"] is not None and not instance["per_call"]:
            await self.sessions.close_session(instance["key"])

    async def close(self) -> None:
        """Close every session and the sandbox (verl never calls this; tests and shutdown do)."""
        await self.sessions.close()

    @staticmethod
    def _input_images(create_kwargs: dict[str, Any], agent_data: Any) -> list[Any]:
        """The trajectory's input images: from tools_kwargs when given, else the prompt's images."""
        if create_kwargs.get("images"):
            return list(create_kwargs["images"])
        images = getattr(agent_data, "image_data", None) or []
        return list(images if isinstance(images, list) else [images])

    def _close_with(self, agent_data: Any, key: str) -> None:
        """Close the session when verl drops the trajectory's agent_data (the end of the trajectory)."""
        if agent_data is None or key in self._finalized:
            return
        self._finalized.add(key)
        loop = asyncio.get_running_loop()
        sessions, finalized = self.sessions, self._finalized

        def _closed() -> None:
            finalized.discard(key)
            if not loop.is_closed():
                loop.call_soon_threadsafe(lambda: loop.create_task(sessions.close_session(key)))

        weakref.finalize(agent_data, _closed)


def observation_response(obs: Observation, max_pixels: int, max_images: int) -> ToolResponse:
    """The tool response verl renders for one executed cell: the observation text alone (our chat template writes
    `<tool_response>`, the images, `</tool_response>` and the nudge around it) and the images, resized as SFT data's."""
    images = [fitted for data in obs.images[:max_images] if (fitted := fit_image(data, max_pixels)) is not None]
    text = observation_text(obs, len(images))
    return ToolResponse(text=text, image=[_to_pil(data) for data in images]) if images else ToolResponse(text=text)


def _to_pil(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image.convert("RGB")
