"""ms-swift multi-turn scheduler that runs the model's code in our sandbox (`--multi_turn_scheduler codedance_sandbox`).

After each generated turn (`on_turn_end`) the turn is parsed with the loop's
parser (the same rules as synth/eval): an answer, no code, a cut-off generation
or the turn budget ends the trajectory; otherwise the code runs in the
trajectory's sandbox session and `step` appends the observation as the next user
turn (rendered exactly as the loop renders it; images go back as `<image>`
entries). Each assistant turn's text and each rendered observation are recorded in
`rollout_infos` (`codedance_turns`, `codedance_observations`): the reward reads the
rollout from them (ms-swift hands earlier assistant turns over as token ids), and
counts failed calls from the observation text with the one grammar of a turn. Sessions live on a private background loop (see
background_loop.py) because ms-swift drives hooks from short-lived loops.

Settings come from the JSON file named by env CODEDANCE_RL_SETTINGS
(`{"sandbox": SandboxConfig, "loop": LoopConfig}`), written by `codedance rl`.
"""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any

from swift.rollout.multi_turn import MultiTurnScheduler

from codedance_cli.data.export_swift import IMAGE_PLACEHOLDER
from codedance_cli.loop.format import observation_content
from codedance_cli.loop.parser import parse_turn
from codedance_cli.recipes.common import LoopConfig, SandboxConfig
from codedance_cli.rewards.rollout_fields import OBSERVATIONS_FIELD, TURNS_FIELD
from codedance_cli.engines.background_loop import BackgroundLoop
from codedance_cli.engines.sandbox_sessions import SandboxSessions, error_observation
from codedance_cli.trajectory.media import decode_data_url

SETTINGS_ENV = "CODEDANCE_RL_SETTINGS"


def load_settings() -> tuple[SandboxConfig, LoopConfig]:
    """Sandbox and loop settings from the run's settings file (defaults without one)."""
    path = os.environ.get(SETTINGS_ENV)
    data = json.loads(Path(path).read_text()) if path else {}
    return SandboxConfig.model_validate(data.get("sandbox") or {}), LoopConfig.model_validate(data.get("loop") or {})


def _image_input(value: Any) -> bytes | Path:
    """ms-swift request images (path, data URL or bare base64) -> what Sandbox.open_session takes."""
    if isinstance(value, dict):
        value = value.get("bytes") or value.get("path")
    if isinstance(value, bytes):
        return value
    text = str(value)
    if text.startswith("data:"):
        return decode_data_url(text)
    if len(text) < 4096 and Path(text).exists():
        return Path(text)
    return base64.b64decode(text)


class CodeDanceSandboxScheduler(MultiTurnScheduler):
    """think -> code -> execute in our sandbox -> observe, until an answer or the turn budget."""

    def __init__(self, infer_engine: Any = None, max_turns: int | None = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(infer_engine, max_turns, *args, **kwargs)
        self.sandbox_config, self.loop_config = load_settings()
        self.max_turns = max_turns or self.loop_config.max_turns
        self.version = self.loop_config.prompt_version
        self.background = BackgroundLoop()
        self.sessions = SandboxSessions(self.sandbox_config)
        self._pending: dict[str, list[dict[str, Any]]] = {}  # the observation `step` appends next, as content parts
        self.sandbox_call_s = 0.0  # seconds spent in sandbox calls (summed over calls); the trainer reads and resets it
        self._turns: dict[str, list[str]] = {}
        self._observation_texts: dict[str, list[str]] = {}

    @staticmethod
    def _key(infer_request: Any) -> str:
        return str(getattr(infer_request, "uuid", None) or id(infer_request))

    async def on_turn_end(self, infer_request: Any, response_choice: Any, current_turn: int) -> dict[str, Any]:
        key = self._key(infer_request)
        text = response_choice.message.content or ""
        parsed = parse_turn(text, self.version)
        turns = self._turns.setdefault(key, [])
        observations = self._observation_texts.setdefault(key, [])
        turns.append(text)
        done = (
            parsed.answer is not None
            or not parsed.wants_execution
            or response_choice.finish_reason == "length"
            or (self.max_turns is not None and current_turn >= self.max_turns)
        )
        if not done:
            if parsed.code is not None:
                images = [_image_input(image) for image in infer_request.images]
                started = time.perf_counter()
                obs = await self.background.run(self.sessions.run(key, parsed.code, lambda: images))
                self.sandbox_call_s += time.perf_counter() - started
            else:
                obs = error_observation("BadToolCall", parsed.tool_error or "no code in the tool call")
            # Rendered once, as the SFT export writes it: `step` sends these parts, the reward reads their text.
            parts = observation_content(obs, self.version, self.loop_config)
            self._pending[key] = parts
            observations.append("".join(part["text"] for part in parts if part["type"] == "text"))
        infos = {TURNS_FIELD: list(turns), OBSERVATIONS_FIELD: list(observations), "images": list(infer_request.images)}
        if done:
            self._turns.pop(key, None)
            self._observation_texts.pop(key, None)
            await self.background.run(self.sessions.close_session(key))
        return {"done": done, "rollout_infos": infos}

    def step(self, infer_request: Any, response_choice: Any, current_turn: int) -> dict[str, Any]:
        key = self._key(infer_request)
        parts = self._pending.pop(key, None)
        if parts is None:
            parts = observation_content(error_observation("SandboxError", "no observation recorded for this turn"), self.version, self.loop_config)
        # The user turn exactly as the SFT export writes it (codedance_cli/data/export_swift.py): the same content
        # parts, each image as ms-swift's <image> placeholder where observation_content puts it.
        text = "".join(part["text"] if part["type"] == "text" else IMAGE_PLACEHOLDER for part in parts)
        infer_request.images.extend(part["image_url"]["url"] for part in parts if part["type"] == "image_url")
        infer_request.messages.append({"role": "user", "content": text})
        return {"infer_request": infer_request, "rollout_infos": {"images": list(infer_request.images)}}

    def close(self) -> None:
        """Close all sessions and stop the background loop (tests; ms-swift exits the process)."""
        self.background.call(self.sessions.close(), timeout_s=60)
        self.background.stop()
