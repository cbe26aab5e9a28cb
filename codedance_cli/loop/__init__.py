"""The think -> code -> execute -> reflect loop.

- `prompts`: versioned system prompts (`codedance-v1`, `codedance-toolcall-v1`).
- `parser`: one raw assistant message -> reasoning, code, answer, flags.
- `format`: observations and the chat messages every client consumes (and SFT export writes).
- `runner`: `run_trajectory` / `run_many` over a ModelClient and a Sandbox.
"""
