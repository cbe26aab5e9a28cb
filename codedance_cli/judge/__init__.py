"""Judge: `JudgeClient` (answer equivalence via a served LLM) and the `codedance judge serve` launcher (`server.py`)."""
