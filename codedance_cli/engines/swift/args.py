"""What `swift sft` (codedance sft) and `swift rlhf` (codedance rl) share: the executable, booleans, the model argument."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from codedance_cli.errors import BadInput
from codedance_cli.recipes.common import SwiftDistributed
from codedance_cli.recipes.model_paths import is_hub_id

VIT_VARLEN_ENV = "CODEDANCE_VIT_VARLEN"  # "1": our plug-in file routes the ViT's windows to one varlen call (vit_varlen.py)
VIT_AUTOCAST_ENV = "CODEDANCE_VIT_AUTOCAST"  # a half dtype: our plug-in file runs the ViT under that autocast (vit_autocast.py)


def flag(value: bool) -> str:
    """A boolean as ms-swift's argument parser spells it."""
    return "true" if value else "false"


def distributed_env(dist: SwiftDistributed) -> dict[str, str]:
    """The variables `swift` reads to re-launch itself under torchrun (none for one process on one machine)."""
    env: dict[str, str] = {}
    if dist.world_size > 1:
        env.update(NPROC_PER_NODE=str(dist.nproc_per_node), NNODES=str(dist.nnodes), NODE_RANK=str(dist.node_rank),
                   MASTER_ADDR=dist.master_addr, MASTER_PORT=str(dist.master_port))
    if dist.cuda_visible_devices is not None:
        env["CUDA_VISIBLE_DEVICES"] = dist.cuda_visible_devices
    return env


def ddp_backend_args(dist: SwiftDistributed) -> list[str]:
    """`--ddp_backend` of a multi-process run. On a machine without CUDA, transformers leaves the processes
    undistributed unless told both gloo and `--use_cpu`: each trains its own copy (it only warns "parallel_mode !=
    ParallelMode.DISTRIBUTED"). So auto gives those two there, and leaves transformers' own choice (nccl) where there
    is CUDA. Resolved where `codedance` runs, which is where `swift` starts its processes."""
    if dist.world_size == 1:
        return []
    if dist.backend != "auto":
        return ["--ddp_backend", dist.backend]
    import torch

    return [] if torch.cuda.is_available() else ["--ddp_backend", "gloo", "--use_cpu", "true"]


def frozen_vit_args(freeze_vit: bool) -> list[str]:
    """`--vit_gradient_checkpointing false` for a frozen ViT: nothing of it is trained, so nothing is recomputed
    (engines/swift/frozen_vit.py removes its backward pass, which this flag alone does not)."""
    return ["--vit_gradient_checkpointing", "false"] if freeze_vit else []


def vit_attention_env(vit_attention: str) -> dict[str, str]:
    """What tells our plug-in file inside swift to run the ViT's windows as one call a block (vit_varlen.py)."""
    return {VIT_VARLEN_ENV: "1"} if vit_attention == "varlen" else {}


def vit_autocast_env(compute_dtype: str, master_weights: str) -> dict[str, str]:
    """What tells our plug-in file to run the ViT under the compute dtype's autocast: only float32 master weights with
    half-precision compute need it (ms-swift runs the ViT outside the autocast it gives the LLM; vit_autocast.py)."""
    if master_weights == "float32" and compute_dtype in ("bfloat16", "float16"):
        return {VIT_AUTOCAST_ENV: compute_dtype}
    return {}


def model_check_args(model: str) -> list[str]:
    """`--check_model false` for a local folder: there is no hub copy to compare it with (offline the check retries ~8 s)."""
    return ["--check_model", "false"] if Path(model).is_dir() else []


def swift_executable(command: str = "swift") -> str:
    """The ms-swift launcher: a path as given; else the one beside this Python (the venv that has codedance), then PATH.

    The venv's own `swift` comes first so that a run never picks up another environment's ms-swift that happens
    to be on PATH; a venv that is not activated (its bin/ not on PATH) still works.
    """
    if "/" in command:
        if Path(command).exists():
            return str(Path(command).resolve())
        raise BadInput(f"swift launcher {command!r} not found")
    beside = Path(sys.executable).with_name(command)
    if beside.exists():
        return str(beside)
    found = shutil.which(command)
    if found:
        return found
    raise BadInput(f"swift launcher {command!r} not found beside {sys.executable} or on PATH: install ms-swift (pip install -e '.[train]')")


def resolve_model(model: str) -> str:
    """A local folder (must hold config.json) as an absolute path, or a hub id left as is; else BadInput."""
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise BadInput(f"model {model!r}: {path.resolve()} has no config.json (not a transformers model folder)")
        return str(path.resolve())
    if is_hub_id(model):
        return model  # ms-swift downloads it (needs network and a hub)
    raise BadInput(f"model {model!r}: model folder not found, and not a hub id of the form org/name")


@dataclass(frozen=True)
class TrainingRun:
    """What `swift sft` and `swift rlhf` are both told, under the same ms-swift argument names."""

    model: str
    dataset: Path
    output_dir: Path
    tuner_type: str
    torch_dtype: str  # the compute dtype (the recipe's model.dtype for training)
    learning_rate: float
    epochs: float
    per_device_train_batch_size: int
    gradient_accumulation_steps: int
    max_length: int
    gradient_checkpointing: bool
    seed: int
    dataloader_num_workers: int
    dataset_num_proc: int
    logging_steps: int
    save_steps: int
    report_to: str
    max_steps: int | None
    master_weights: str = "model"  # "float32": train float32 weights under torch_dtype autocast (precision_args)


def precision_args(compute_dtype: str, master_weights: str = "model") -> list[str]:
    """`--torch_dtype` and the autocast flags, both spelt out.

    ms-swift loads, trains and updates the weights in `--torch_dtype` and picks the autocast from it alone: bfloat16
    gives bf16 weights *and* bf16 Adam state, where an update under half a bf16 step of the weight rounds away (at lr
    1e-5 an Adam step moves 14 % of the 25M pipeline model's weights: docs/paper-settings.md, "Precision of the trained
    weights"); float32 gives fp16 autocast with a loss scaler. So: compute float32 trains in plain float32; master_weights "float32"
    keeps float32 weights and optimizer state with bf16/fp16 autocast (what verl's FSDP actor does by default);
    "model" keeps the weights in the compute dtype (ms-swift's own choice; half the memory of weights and state).
    """
    if compute_dtype == "float32":
        return ["--torch_dtype", "float32", "--bf16", "false", "--fp16", "false"]
    bf16 = compute_dtype == "bfloat16"
    loaded = "float32" if master_weights == "float32" else compute_dtype
    return ["--torch_dtype", loaded, "--bf16", flag(bf16), "--fp16", flag(not bf16)]


def training_args(run: TrainingRun) -> list[str]:
    """The shared part of both command lines (each stage adds its own flags after it)."""
    args = [
        "--model", run.model,
        "--dataset", str(run.dataset),
        "--output_dir", str(run.output_dir),
        "--add_version", "false",
        "--tuner_type", run.tuner_type,
        *precision_args(run.torch_dtype, run.master_weights),
        "--learning_rate", repr(run.learning_rate),
        "--num_train_epochs", repr(run.epochs),
        "--per_device_train_batch_size", str(run.per_device_train_batch_size),
        "--gradient_accumulation_steps", str(run.gradient_accumulation_steps),
        "--max_length", str(run.max_length),
        "--gradient_checkpointing", flag(run.gradient_checkpointing),
        "--seed", str(run.seed),
        "--dataloader_num_workers", str(run.dataloader_num_workers),
        "--dataset_num_proc", str(run.dataset_num_proc),
        "--logging_steps", str(run.logging_steps),
        "--save_steps", str(run.save_steps),
        "--report_to", run.report_to,
    ]  # fmt: skip
    if run.max_steps is not None:
        args += ["--max_steps", str(run.max_steps)]
    return args + model_check_args(run.model)
