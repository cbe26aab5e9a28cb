"""ms-swift runs with several processes (issue 19, on CPU with gloo): what each process trains on must be what one
process would have trained on.

- GRPO: ms-swift hands each process a slice of the generation batch, so a prompt's rollouts can sit in several
  processes. The reward's group term (R_seq's difficulty decay) and batch term (R_turn's normalisation) are gathered
  across processes first: two real processes under torchrun, the group split between them, give exactly the rewards
  and offsets of one process holding the whole batch.
- SFT and GRPO through `codedance` with two processes on CPU train data-parallel (gloo, `--use_cpu`), not two copies
  side by side.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("swift")

from codedance_cli.recipes.rl import RewardConfig  # noqa: E402
from conftest import REPO_ROOT, free_port, run_codedance  # noqa: E402

RANK_SCRIPT = textwrap.dedent('''
    import json, os, sys
    import torch.distributed as dist
    from swift.rl_core.grpo_algorithm import compute_rewards_per_func
    from codedance_cli.engines.swift.reward import CodeDanceReward
    from codedance_cli.loop.prompts import tool_call_text

    dist.init_process_group("gloo")
    rank = dist.get_rank()

    class Sample:  # the members compute_rewards_per_func reads from ms-swift's GRPOSample
        def __init__(self, infos, prompt_id):
            self.infos, self.prompt_id = infos, prompt_id
            self.messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": [1, 2, 3]}]

        def to_reward_row(self):
            columns = {"solution": "3", "answer_type": "number", "choices": "[]", "question": "How many?", "metadata": "{}"}
            return {"messages": self.messages, "rollout_infos": self.infos, "prompt_id": self.prompt_id,
                    "data_source": "nano", **columns}

    call = "<think>a</think>" + tool_call_text("print(3)")
    right = {"codedance_turns": [call, "<think>b</think><answer>3</answer>"],
             "codedance_observations": ["<tool_response>\\n3\\n</tool_response>"]}
    failed = {"codedance_turns": [call, "<think>b</think><answer>2</answer>"],
              "codedance_observations": ["<tool_response>\\nError: NameError: x\\n</tool_response>"]}
    plain = {"codedance_turns": ["no tags 5"], "codedance_observations": []}
    batch = [Sample(right, "p0"), Sample(failed, "p0"), Sample(plain, "p1")]
    mine = batch[:1] if rank == 0 else batch[1:]  # group p0 split between the two processes
    rewards = compute_rewards_per_func(mine, [CodeDanceReward()], None, device="cpu")
    result = {"rewards": rewards[:, 0].tolist(), "offsets": [s.infos.get("codedance_turn_offsets") for s in mine]}
    with open(os.path.join(sys.argv[1], f"rank{rank}.json"), "w") as handle:
        json.dump(result, handle)
    dist.barrier()
    dist.destroy_process_group()
''')


def test_grpo_reward_gathers_groups_split_across_processes(tmp_path: Path) -> None:
    config = tmp_path / "reward.json"
    config.write_text(RewardConfig().model_dump_json())
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    env = {"CODEDANCE_REWARD_CONFIG": str(config), "CODEDANCE_REWARD_LOG": str(tmp_path / "rewards.jsonl"),
           "PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                           str(free_port()), str(script), str(tmp_path)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rank0, rank1 = (json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1))
    decay = (1 + math.tanh(4 * (0.5 - 0.5))) / 2 - 0.2  # group p0 over both processes: outcomes 1 and 0, mu = 0.5
    assert rank0["rewards"] == pytest.approx([1.0 + decay * 1.5])  # alone, rank 0 would see mu = 1 (decay -0.2)
    assert rank1["rewards"] == pytest.approx([0.0, -0.2])
    # R_turn normalised over the whole batch, as one process would: +1 and -1 standard deviations, times beta 0.2
    assert rank0["offsets"] == [pytest.approx([0.2, 0.0])]
    assert rank1["offsets"][0] == pytest.approx([-0.2, 0.0])
    logged = [json.loads(line) for line in (tmp_path / "rewards.jsonl").read_text().splitlines()]
    assert [entry["tool_calls"] for entry in logged] == [1.0, 1.0, 0.0]  # the whole batch, once, from rank 0


def _data_parallel(log: str) -> bool:
    """What swift.log shows of a data-parallel CPU run: gloo and --use_cpu passed, two ranks, and not transformers'
    warning that the processes are not distributed (each would train its own copy)."""
    return ("--ddp_backend gloo --use_cpu true" in log and "world_size: 2" in log
            and "parallel_mode != ParallelMode.DISTRIBUTED" not in log)


def test_grpo_with_two_processes_on_cpu(tiny_model_dir: Path, nano_items: Path, tmp_path: Path) -> None:
    out = tmp_path / "rl"
    result = run_codedance(
        "rl", REPO_ROOT / "recipes" / "nano" / "rl.yaml", "--set", f"model={tiny_model_dir}", "--set", f"dataset={nano_items}",
        "--set", f"output_dir={out}", "--set", "train.max_steps=1", "--set", "train.save_steps=1",
        "--set", "swift.max_completion_length=24", "--set", "swift.per_device_train_batch_size=4",
        "--set", "swift.distributed.nproc_per_node=2", "--set", f"swift.distributed.master_port={free_port()}", timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert _data_parallel((out / "swift.log").read_text())
    # 2 prompts x 4 rollouts, half in each process: the reward log holds the whole batch, written once
    assert len((out / "rewards.jsonl").read_text().splitlines()) == 8
    assert (out / "last").is_dir()


def test_sft_with_two_processes_on_cpu_trains_data_parallel(tiny_model_dir: Path, nano_items: Path, tmp_path: Path) -> None:
    out = tmp_path / "sft"
    result = run_codedance(
        "sft", REPO_ROOT / "recipes" / "nano" / "sft.yaml", "--set", f"model={tiny_model_dir}",
        "--set", f"dataset.path={nano_items}", "--set", f"output_dir={out}", "--set", "train.max_steps=2",
        "--set", "train.logging_steps=1", "--set", "train.save_steps=2", "--set", "train.per_device_train_batch_size=2",
        "--set", "distributed.nproc_per_node=2", "--set", f"distributed.master_port={free_port()}", timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert _data_parallel((out / "swift.log").read_text())
    losses = json.loads((out / "sft_summary.json").read_text())["losses"]
    assert len(losses) == 2 and losses[0] < 9  # the mean over processes (~log of the vocabulary), not their sum
