"""Recipe sections shared by several stages: the model, the sandbox, the tool loop.

Stages embed these instead of re-declaring fields, so `max_turns` means the same
thing in synth, filter, rl and eval.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from codedance_cli.recipes.base import RecipeModel


TRAINING_MAX_PIXELS = 1280 * 28 * 28  # Qwen2.5-VL's usual training budget: training starts from it unless told otherwise


class VllmOptions(RecipeModel):
    """How the in-process vLLM engine runs (backend vllm): the `vllm serve` flags a user reaches for first."""

    batching: Literal["continuous", "batch"] = Field(
        "continuous",
        description="continuous: vLLM's AsyncLLM, each request on its own (a turn never waits for others); "
        "batch: gather concurrent requests into one LLM.chat call (the older client).",
    )
    gpu_memory_utilization: float = Field(0.8, gt=0, le=1, description="Share of GPU memory vLLM takes (weights + KV cache).")
    max_model_len: int | None = Field(None, gt=0, description="Context length; unset: the model's own.")
    enforce_eager: bool = Field(False, description="Skip CUDA graph capture: faster start, slower decoding.")


class ModelSpec(RecipeModel):
    """Where a model comes from and how it is loaded: the same section in every stage that loads one.

    A plain string is read as `path` (`model: artifacts/nano/sft/last`, `--set model=...`).
    """

    path: str | None = Field(None, description="Local model folder or hub id (e.g. Qwen/Qwen2.5-VL-7B-Instruct).")
    endpoint: str | None = Field(None, description="Base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1.")
    served_name: str | None = Field(None, description="Model name to send to the endpoint; defaults to what /v1/models lists first.")
    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable holding the endpoint's API key, if any.")
    backend: Literal["auto", "openai", "transformers", "vllm"] = Field(
        "auto", description="auto: endpoint if set, else vllm if importable and a GPU is present, else transformers."
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights dtype: auto is the checkpoint's own for inference and bfloat16 for training (sft, rl)."
    )
    device: str = Field("auto", description="torch device for the transformers backend (auto, cpu, cuda, cuda:1).")
    max_pixels: int | None = Field(
        None,
        description="Pixel budget per image. Unset: inference uses the budget saved with the checkpoint (what `codedance sft` "
        f"trained at); rl starts from it too; sft uses {TRAINING_MAX_PIXELS} (1280 * 28 * 28). A budget above the saved one is warned about.",
    )
    min_pixels: int | None = Field(None, description="Lower pixel bound per image; unset keeps the checkpoint's own.")
    vllm: VllmOptions = Field(default_factory=VllmOptions, description="Engine settings for backend vllm.")
    request_timeout_s: float = Field(300.0, description="HTTP timeout per generation request.")
    max_retries: int = Field(5, description="Retries with exponential backoff on HTTP errors / 429.")

    @model_validator(mode="before")
    @classmethod
    def _path_shorthand(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value

    def training_dtype(self) -> str:
        """The dtype a training engine gets: bfloat16 unless the recipe names one."""
        return "bfloat16" if self.dtype == "auto" else self.dtype

    def require_path(self, field: str) -> str:
        """The local folder or hub id a training engine loads (an endpoint cannot be trained)."""
        if not self.path:
            raise ValueError(f"{field}.path is required: training loads a local folder or hub id, not an endpoint")
        return self.path


class DockerSandboxConfig(RecipeModel):
    """The production backend: long-lived hardened containers running the warm worker."""

    image: str = Field("codedance-sandbox:latest", description="Image built by `codedance sandbox build-image`.")
    runtime: Literal["runc", "runsc"] = Field("runc", description="runsc = gVisor (needs pids_limit >= 256).")
    pool_size: int = Field(4, description="Containers kept warm.")
    cpus: float = Field(1.0, description="--cpus per container.")
    memory_mb: int = Field(2048, description="--memory (and --memory-swap) per container.")
    pids_limit: int = Field(256, description="--pids-limit per container.")
    tmpfs_mb: int = Field(256, description="Size of the writable /tmp tmpfs.")
    sessions_per_container: int = Field(200, description="Recycle a container after this many sessions.")
    user: str | None = Field(
        None,
        description="Run the worker as this uid:gid with no capabilities (e.g. 10001:10001; sessions then share one uid). "
        "Default: container root keeping only SETUID/SETGID/KILL/CHOWN, so that every session runs under its own unprivileged uid.",
    )


class SandboxConfig(RecipeModel):
    """How model-written code is executed; see docs/sandbox.md for the layers."""

    backend: Literal["local", "docker"] = Field("local", description="local: warm forked workers in bubblewrap; docker: hardened containers.")
    workers: int = Field(2, description="Warm worker processes (local backend).")
    timeout_s: float = Field(15.0, description="Wall-clock limit per code cell; the whole process group is killed.")
    cpu_s: int = Field(15, description="RLIMIT_CPU per cell.")
    memory_mb: int = Field(2048, description="RLIMIT_AS per session process.")
    file_size_mb: int = Field(64, description="RLIMIT_FSIZE: largest file the code may write.")
    max_open_files: int = Field(256, description="RLIMIT_NOFILE.")
    max_processes: int = Field(64, description="RLIMIT_NPROC (enforced after dropping root).")
    max_output_chars: int = Field(8000, description="stdout/stderr kept per cell; the rest is cut with a marker.")
    max_images_per_cell: int = Field(8, description="Images kept per cell.")
    sessions_per_worker: int = Field(500, description="Recycle a worker after this many sessions.")
    use_bwrap: bool = Field(True, description="Wrap workers in bubblewrap where it is installed.")
    use_seccomp: bool = Field(True, description="Block network sockets with seccomp where pyseccomp loads.")
    docker: DockerSandboxConfig = Field(default_factory=DockerSandboxConfig, description="Docker backend settings.")


class LoopConfig(RecipeModel):
    """The think -> code -> execute -> reflect loop."""

    prompt_version: str = Field("codedance-v1", description="Versioned system prompt / turn format (see codedance_cli/loop/prompts.py).")
    max_turns: int = Field(6, description="Assistant turns per trajectory before stopping.")
    max_new_tokens: int = Field(1024, description="Token budget per assistant turn.")
    max_total_tokens: int = Field(16384, description="Token budget for the whole trajectory.")
    max_consecutive_failures: int = Field(3, description="Stop after this many failed code executions in a row.")
    temperature: float = Field(0.0, description="Sampling temperature (0 = greedy).")
    top_p: float = Field(1.0, description="Nucleus sampling.")
    concurrency: int = Field(16, description="Trajectories in flight at once.")
    observation_max_pixels: int = Field(512 * 28 * 28, description="Images produced by code are resized to this budget before going back to the model.")
    max_observation_images: int = Field(4, description="Images per observation returned to the model.")


class SwiftDistributed(RecipeModel):
    """Processes and machines of an ms-swift run, as the environment variables `swift` reads before it re-launches
    itself under torchrun (`swift sft`, `swift rlhf`)."""

    nproc_per_node: int = Field(1, ge=1, description="NPROC_PER_NODE: processes (GPUs) per machine; 1 runs without torchrun.")
    nnodes: int = Field(1, ge=1, description="NNODES: machines in the job.")
    node_rank: int = Field(0, ge=0, description="NODE_RANK: this machine's index (0 on the master).")
    master_addr: str = Field("127.0.0.1", description="MASTER_ADDR: address of node 0.")
    master_port: int = Field(29500, description="MASTER_PORT: rendezvous port on node 0.")
    cuda_visible_devices: str | None = Field(None, description="CUDA_VISIBLE_DEVICES, e.g. '0,1,2,3'; unset leaves it alone.")
    backend: Literal["auto", "nccl", "gloo"] = Field(
        "auto", description="--ddp_backend of a multi-process run; auto: transformers' choice (nccl) with CUDA, gloo "
        "without (transformers runs CPU processes side by side, not data-parallel, unless it is told gloo).")

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.nnodes


class DataRef(RecipeModel):
    """A dataset in the trajectory format (parquet folder/file) or a public format handled by `data import`."""

    path: Path = Field(description="Local file or folder.")
    format: Literal["trajectory", "codedance-sft", "codedance-rl", "vqa-jsonl", "auto"] = Field("trajectory", description="How to read it.")
    limit: int | None = Field(None, description="Use at most this many items.")
