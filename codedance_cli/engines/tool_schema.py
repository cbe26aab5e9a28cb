"""The code tool's function schema, as both engines declare it to the model.

Same name and argument as the `codedance-toolcall-v1` system prompt
(codedance_cli/loop/prompts.py), so the RL model calls the tool it was SFT'd on.
Kept free of engine imports: the command builder writes it into verl's tool YAML.
"""

from __future__ import annotations

from codedance_cli.loop.prompts import TOOL_NAME

TOOL_DESCRIPTION = (
    "Execute Python code in a persistent sandboxed environment with PIL, cv2, matplotlib and numpy. "
    "The input image is available as `input_image` (PIL) and at `input_image_path`; all inputs as "
    "`input_images`. Return results with print(), plt.show(), display(img) or a final image expression."
)


def tool_schema_dict() -> dict:
    """OpenAI function-tool schema of `execute_python_code`."""
    return {
        "type": "function",
        "function": {
            "name": TOOL_NAME,
            "description": TOOL_DESCRIPTION,
            "parameters": {
                "type": "object",
                "properties": {"code": {"type": "string", "description": "The Python code to execute."}},
                "required": ["code"],
            },
        },
    }
