"""Model clients: OpenAI-compatible HTTP, in-process transformers, vLLM (offline batches or AsyncLLM), scripted replay.

All implement `ModelClient.generate(messages, ...) -> Generation` on the
messages `codedance_cli.loop.format.build_messages` produces.
"""

from codedance_cli.clients.base import Generation, Messages, ModelClient
from codedance_cli.clients.factory import create_client, resolve_backend
from codedance_cli.clients.scripted import ScriptedClient, ScriptExhausted

__all__ = ["Generation", "Messages", "ModelClient", "ScriptExhausted", "ScriptedClient", "create_client", "resolve_backend"]
