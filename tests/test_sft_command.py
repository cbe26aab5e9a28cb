"""`codedance sft` up to the engine boundary: the exact `swift sft` command and environment, and early failures."""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path

import pytest

from codedance_cli.errors import BadInput
from codedance_cli.recipes import load_recipe
from codedance_cli.engines.swift.args import resolve_model
from codedance_cli.engines.swift.sft_command import swift_args, swift_env
from codedance_cli.trajectory import write_trajectories
from conftest import REPO_ROOT, run_codedance
from sft_trajectories import make_trajectories

NANO = REPO_ROOT / "recipes" / "nano" / "sft.yaml"
PAPER = REPO_ROOT / "recipes" / "qwen2.5-vl-7b" / "sft.yaml"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sft-data") / "trajectories"
    write_trajectories(path, make_trajectories(2))
    return path


def _flags(argv: list[str]) -> dict[str, list[str]]:
    """`--name v1 v2` -> {"name": ["v1", "v2"]}."""
    flags: dict[str, list[str]] = {}
    current = None
    for item in argv[2:]:
        if item.startswith("--"):
            current = item[2:]
            flags[current] = []
        else:
            flags[current].append(item)  # type: ignore[index]
    return flags


def test_every_flag_is_a_real_ms_swift_argument(tiny_model_dir: Path, dataset: Path) -> None:
    """Names come from ms-swift's own SftArguments dataclass, not from memory."""
    from swift.arguments import SftArguments

    known = {f.name for f in dataclasses.fields(SftArguments)}
    for recipe_path, sets in [(NANO, []), (PAPER, ["parts.tuner_type=lora"])]:
        recipe = load_recipe(recipe_path, [f"model={tiny_model_dir}", f"dataset.path={dataset}", *sets])
        flags = _flags(swift_args(recipe, str(tiny_model_dir), dataset / "train.jsonl"))
        assert set(flags) <= known, set(flags) - known


def test_paper_recipe_command_and_environment(dataset: Path) -> None:
    recipe = load_recipe(PAPER, [f"dataset.path={dataset}"])
    argv = swift_args(recipe, "Qwen/Qwen2.5-VL-7B-Instruct", Path("/d/train.jsonl"))
    flags = _flags(argv)
    assert argv[:2] == ["swift", "sft"]
    assert flags["model"] == ["Qwen/Qwen2.5-VL-7B-Instruct"] and flags["dataset"] == ["/d/train.jsonl"]
    assert flags["tuner_type"] == ["full"] and flags["freeze_vit"] == ["true"] and flags["deepspeed"] == ["zero3"]
    assert flags["torch_dtype"] == ["bfloat16"] and flags["gradient_checkpointing"] == ["true"]
    assert (flags["bf16"], flags["fp16"]) == (["true"], ["false"])  # spelt out, not left to ms-swift's inference
    assert "max_pixels" not in flags and flags["max_length"] == ["16384"]  # the budget travels as MAX_PIXELS
    assert flags["per_device_train_batch_size"] == ["1"] and flags["gradient_accumulation_steps"] == ["16"]
    env = swift_env(recipe)
    assert env == {"MAX_PIXELS": "1003520", "NPROC_PER_NODE": "8", "NNODES": "1", "NODE_RANK": "0",
                   "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500", "CODEDANCE_VIT_VARLEN": "1"}


def test_float32_master_weights_load_float32_and_autocast_bf16(dataset: Path) -> None:
    """Without DeepSpeed, bf16 weights round most low-lr Adam steps away (docs/paper-settings.md); float32 masters
    mean: load float32, autocast bf16, never fp16 (ms-swift's own pick for a float32 --torch_dtype)."""
    recipe = load_recipe(PAPER, [f"dataset.path={dataset}", "train.master_weights=float32", "train.deepspeed=none"])
    flags = _flags(swift_args(recipe, "m", Path("d.jsonl")))
    assert (flags["torch_dtype"], flags["bf16"], flags["fp16"]) == (["float32"], ["true"], ["false"])


def test_multi_node_lora_and_extra_args(dataset: Path) -> None:
    recipe = load_recipe(PAPER, [
        f"dataset.path={dataset}", "distributed.nnodes=2", "distributed.node_rank=1", "distributed.master_addr=10.0.0.5",
        "distributed.cuda_visible_devices='0,1,2,3,4,5,6,7'", "parts.tuner_type=lora", "parts.lora_rank=64",
        "train.deepspeed=zero2", "extra_args=[--packing, 'true']", "env={NCCL_DEBUG: INFO}",
    ])
    env = swift_env(recipe)
    assert env["NNODES"] == "2" and env["NODE_RANK"] == "1" and env["MASTER_ADDR"] == "10.0.0.5"
    assert env["CUDA_VISIBLE_DEVICES"] == "0,1,2,3,4,5,6,7" and env["NCCL_DEBUG"] == "INFO"
    flags = _flags(swift_args(recipe, "m", Path("d.jsonl")))
    assert flags["tuner_type"] == ["lora"] and flags["lora_rank"] == ["64"] and flags["target_modules"] == ["all-linear"]
    assert flags["deepspeed"] == ["zero2"] and flags["packing"] == ["true"]
    assert "check_model" not in flags  # a hub id: ms-swift may check the download against the hub
    # the stock type still takes our plugin file (a frozen ViT runs no backward) and no ViT recomputation
    assert flags["external_plugins"][0].endswith("engines/swift/sft_plugin.py")
    assert flags["vit_gradient_checkpointing"] == ["false"]


def test_single_process_sets_no_torchrun_variables(tiny_model_dir: Path, dataset: Path) -> None:
    recipe = load_recipe(NANO, [f"dataset.path={dataset}"])
    assert swift_env(recipe) == {"MAX_PIXELS": "50176"}
    flags = _flags(swift_args(recipe, str(tiny_model_dir), dataset))
    assert flags["torch_dtype"] == ["float32"] and flags["max_steps"] == ["300"] and "deepspeed" not in flags
    assert (flags["bf16"], flags["fp16"]) == (["false"], ["false"])  # plain float32: no fp16 autocast on a GPU either
    assert flags["check_model"] == ["false"]  # a local folder has no hub copy to check against
    # the CPU model type is ours: the plugin file that registers it goes along
    assert flags["model_type"] == ["codedance_qwen2_5_vl"] and flags["external_plugins"][0].endswith("engines/swift/sft_plugin.py")


def test_dry_run_prints_exact_command_and_env(tiny_model_dir: Path, dataset: Path, tmp_path: Path) -> None:
    result = run_codedance("sft", NANO, "--dry-run", "--set", f"model={tiny_model_dir}", "--set", f"dataset.path={dataset}",
                           "--set", f"output_dir={tmp_path / 'out'}")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "export MAX_PIXELS=50176" in lines
    command = shlex.split(result.stdout.split("\nexport MAX_PIXELS=50176\n", 1)[1].replace("\\\n", " "))
    assert command[:2] == ["swift", "sft"] and _flags(command)["model"] == [str(tiny_model_dir.resolve())]
    assert _flags(command)["output_dir"] == [str((tmp_path / "out").resolve())]
    assert not (tmp_path / "out").exists()  # a dry run writes nothing


def test_unknown_model_or_dataset_fails_before_anything_starts(tiny_model_dir: Path, dataset: Path, tmp_path: Path) -> None:
    missing_model = run_codedance("sft", NANO, "--set", f"model={tmp_path / 'nope'}", "--set", f"dataset.path={dataset}",
                                  "--set", f"output_dir={tmp_path / 'out'}")
    assert missing_model.returncode == 2
    assert f"model folder not found: {tmp_path / 'nope'} (from {NANO} field model.path)" in missing_model.stderr
    missing_data = run_codedance("sft", NANO, "--set", f"model={tiny_model_dir}", "--set", f"dataset.path={tmp_path / 'gone'}",
                                 "--set", f"output_dir={tmp_path / 'out'}")
    assert missing_data.returncode == 2 and "dataset.path" in missing_data.stderr and "gone" in missing_data.stderr
    assert not (tmp_path / "out").exists()


def test_resolve_model(tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_model(str(tiny_model_dir)) == str(tiny_model_dir.resolve())
    assert resolve_model("Qwen/Qwen2.5-VL-7B-Instruct") == "Qwen/Qwen2.5-VL-7B-Instruct"
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInput, match="config.json"):
        resolve_model(str(tmp_path / "empty"))
    monkeypatch.chdir(tmp_path)  # independent of what a demo left in the checkout
    with pytest.raises(BadInput, match="folder not found"):
        resolve_model("./artifacts/nano/sft/last")


def test_dry_run_without_data_prints_the_plan_and_warns(tiny_model_dir: Path, tmp_path: Path) -> None:
    missing = tmp_path / "not-made-yet"
    result = run_codedance("sft", NANO, "--dry-run", "--set", f"model={tiny_model_dir}", "--set", f"dataset.path={missing}")
    assert result.returncode == 0, result.stderr
    assert "swift" in result.stdout and "--dataset" in result.stdout
    assert f"warning: dataset.path: {missing} does not exist" in result.stderr


def test_one_model_section_a_path_shorthand_keeps_the_base_recipes_settings(tiny_model_dir: Path, dataset: Path) -> None:
    """The nano recipes put device, dtype and pixel budget in model_base.yaml once; `--set model=PATH` (or a stage's
    `model: PATH`) changes only where the model comes from."""
    recipe = load_recipe(NANO, [f"model={tiny_model_dir}", f"dataset.path={dataset}"])
    assert recipe.model.path == str(tiny_model_dir) and recipe.model.dtype == "float32" and recipe.model.max_pixels == 50176
    rl = load_recipe(Path(NANO).with_name("rl.yaml"), [f"model={tiny_model_dir}"])
    assert rl.model.dtype == "float32" and rl.model.max_pixels == 50176
    unset = load_recipe(Path(NANO).with_name("rl.yaml"), [f"model={tiny_model_dir}", "model.max_pixels=null"])
    assert unset.rollout_max_pixels() == 64 * 28 * 28  # unset: the budget the checkpoint records (the tiny model's)


def test_training_needs_a_model_path_not_an_endpoint(dataset: Path) -> None:
    with pytest.raises(BadInput, match=r"model\.path is required"):
        load_recipe(NANO, ["model={endpoint: 'http://127.0.0.1:8000/v1'}", f"dataset.path={dataset}"])


def test_process_backend_is_explicit_where_asked_and_gloo_on_cpu(dataset: Path) -> None:
    """A recipe's `distributed.backend` reaches `--ddp_backend`; auto on a machine without CUDA (this one) is gloo
    with `--use_cpu`, without which transformers would not make the processes data-parallel."""
    nccl = load_recipe(PAPER, [f"dataset.path={dataset}", "distributed.backend=nccl"])
    flags = _flags(swift_args(nccl, "m", Path("d.jsonl")))
    assert flags["ddp_backend"] == ["nccl"] and "use_cpu" not in flags
    auto = _flags(swift_args(load_recipe(PAPER, [f"dataset.path={dataset}"]), "m", Path("d.jsonl")))
    assert auto["ddp_backend"] == ["gloo"] and auto["use_cpu"] == ["true"]  # the 7B recipe: 8 processes
    one = load_recipe(PAPER, [f"dataset.path={dataset}", "distributed.nproc_per_node=1"])
    assert "ddp_backend" not in _flags(swift_args(one, "m", Path("d.jsonl")))
