"""The chat template verl renders rollouts with (`actor_rollout_ref.model.custom_chat_template`).

Why our own: verl's tool agent loop renders every prompt and tool result through the model's chat template, as
`{"role": "tool", ...}` messages with `tools=` the tool schemas. Qwen2.5-VL's own template knows neither: it
writes a tool message as `<|im_start|>tool\\n...<|im_end|>`, so rollouts would not look like the SFT data (where a
result is a *user* turn `<tool_response>\\n{text}\\n{images}</tool_response>\\n{nudge}`, `observation_content` in
codedance_cli/loop/format.py) and the reward, which reads calls from `<tool_response>` blocks, would see none.

This template renders system / user / assistant exactly as Qwen2.5-VL's (and ms-swift's `qwen2_5_vl`) does, with the
default system prompt only when there is none, ignores `tools` (the `codedance-toolcall-v1` system prompt already
lists the tool), and renders consecutive tool messages as one user turn: each `<tool_response>\\n{text}\\n{images}
</tool_response>\\n`, then the fixed nudge. verl puts a result's images before its text (tool_agent_loop.py); the
template writes text parts first, images after, which is where `observation_content` puts them.
"""

from __future__ import annotations

from codedance_cli.loop.prompts import TOOL_RESPONSE_NUDGE

DEFAULT_SYSTEM = "You are a helpful assistant."  # Qwen2.5-VL's and ms-swift's default system prompt


def _literal(text: str) -> str:
    """`text` as a single-quoted jinja string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


# `parts(content, 'all' | 'text' | 'media')`: a message's content (a string, or image/video/text parts) as Qwen2.5-VL
# writes it, restricted to its text or its media.
CHAT_TEMPLATE = (
    r"""{%- set image_count = namespace(value=0) -%}
{%- set video_count = namespace(value=0) -%}
{%- macro parts(content, kind) -%}
{%- if content is string -%}{%- if kind != 'media' -%}{{- content -}}{%- endif -%}
{%- elif content is not none -%}{%- for part in content -%}
{%- if part['type'] == 'image' or 'image' in part or 'image_url' in part -%}{%- if kind != 'text' -%}
{%- set image_count.value = image_count.value + 1 -%}
{%- if add_vision_id -%}{{- 'Picture ' + image_count.value | string + ': ' -}}{%- endif -%}
{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}{%- endif -%}
{%- elif part['type'] == 'video' or 'video' in part -%}{%- if kind != 'text' -%}
{%- set video_count.value = video_count.value + 1 -%}
{%- if add_vision_id -%}{{- 'Video ' + video_count.value | string + ': ' -}}{%- endif -%}
{{- '<|vision_start|><|video_pad|><|vision_end|>' -}}{%- endif -%}
{%- elif 'text' in part and kind != 'media' -%}{{- part['text'] -}}
{%- endif -%}
{%- endfor -%}{%- endif -%}
{%- endmacro -%}
{%- if messages[0]['role'] != 'system' -%}{{- '<|im_start|>system\n"""
    + DEFAULT_SYSTEM
    + r"""<|im_end|>\n' -}}{%- endif -%}
{%- for message in messages -%}
{%- if message['role'] == 'tool' -%}
{%- if loop.first or messages[loop.index0 - 1]['role'] != 'tool' -%}{{- '<|im_start|>user\n' -}}{%- endif -%}
{{- '<tool_response>\n' + parts(message['content'], 'text') + '\n' + parts(message['content'], 'media') + '</tool_response>\n' -}}
{%- if loop.last or messages[loop.index0 + 1]['role'] != 'tool' -%}{{- """
    + _literal(TOOL_RESPONSE_NUDGE)
    + r""" + '<|im_end|>\n' -}}{%- endif -%}
{%- else -%}
{{- '<|im_start|>' + message['role'] + '\n' + parts(message['content'], 'all') + '<|im_end|>\n' -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%}
"""
)
