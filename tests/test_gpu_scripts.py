"""The device scripts' own process handling, run on CPU: a phase that cannot stop its server holds a device call.

On the H200 (2026-12-03) the judge phase of `scripts/gpu_engines_check.sh` answered its 64 requests and then never
returned: it started `codedance judge serve` through a shell function in the background, so `kill -INT $!` reached
a bash subshell (which ignores SIGINT, as background jobs of scripts do) and never the server. The verl phase behind
it never started and the call's device time ran out. The judge phase runs here with the transformers engine, so the
same break shows on CPU as a test that does not end. The multi-GPU node check's GRPO phase runs here too, with two
CPU processes, and the RL check's deadline (RL_UNTIL), which a lost session would otherwise find out about on the GPU,
and the settings its RL runs are launched with (RL_DRY_RUN).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest
from conftest import REPO_ROOT, free_port

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the device scripts read /proc (stop_within)")


def bash(script: str, timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_stop_within_kills_a_child_that_ignores_sigterm():
    script = (
        "source scripts/gpu_lib.sh; "
        f"{sys.executable} -c 'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)' & "
        "pid=$!; sleep 1; stop_within $pid 2; kill -0 $pid 2>/dev/null && echo ALIVE || echo GONE"
    )
    start = time.monotonic()
    done = bash(script, timeout=30, env={"PY": sys.executable})
    assert done.stdout.strip().splitlines()[-1] == "GONE", done.stdout + done.stderr
    assert "SIGKILL" in done.stdout
    assert time.monotonic() - start < 15


def test_stop_within_returns_as_soon_as_the_child_exits():
    script = (
        "source scripts/gpu_lib.sh; "
        f"{sys.executable} -c 'import time; time.sleep(60)' & pid=$!; sleep 1; "
        "start=$SECONDS; stop_within $pid 30; echo waited $((SECONDS - start))"
    )
    done = bash(script, timeout=30, env={"PY": sys.executable})
    assert done.stdout.strip().splitlines()[-1] in {"waited 0", "waited 1"}, done.stdout + done.stderr


def test_judge_phase_serves_answers_and_stops(tmp_path):
    """The judge phase end to end on CPU: serve, 4 judge requests through our client, stop, return."""
    work = tmp_path / "work"
    env = {
        "PYTHON": sys.executable, "WORK": str(work), "JUDGE_ENGINE": "transformers", "JUDGE_DEVICE": "cpu",
        "JUDGE_PORT": str(free_port()), "JUDGE_REQUESTS": "4",
    }
    done = bash(f"bash scripts/gpu_engines_check.sh judge {tmp_path / 'out'}", timeout=400, env=env)
    judge_log = (work / "out" / "judge.log").read_text()
    assert "judge serve ready" in judge_log, judge_log + done.stdout[-2000:]
    assert "| general | 4 |" in judge_log and "| math | 4 |" in judge_log, judge_log
    stopped = [line for line in judge_log.splitlines() if line.startswith("judge serve stopped")]
    assert stopped and int(stopped[0].split()[3]) < 30, judge_log
    assert "judge wall s:" in (work / "out" / "walls.txt").read_text()


def test_a_phase_past_phase_limit_is_stopped_with_its_server(tmp_path):
    """`all` runs each phase under `timeout`: a phase that overruns ends, and takes its judge server with it."""
    port = free_port()
    env = {
        "PYTHON": sys.executable, "WORK": str(tmp_path / "work"), "JUDGE_ENGINE": "transformers", "JUDGE_DEVICE": "cpu",
        "JUDGE_PORT": str(port), "PHASES": "judge", "PHASE_LIMIT": "8",
    }
    start = time.monotonic()
    done = bash(f"bash scripts/gpu_engines_check.sh all {tmp_path / 'out'}", timeout=120, env=env)
    assert done.returncode == 1
    assert "judge phase stopped after PHASE_LIMIT=8 s" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
    assert time.monotonic() - start < 60
    time.sleep(1)
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, "the judge server outlived its phase"


def test_node_check_grpo_phase_runs_two_processes(tmp_path, tiny_model_dir):
    """scripts/gpu_node_check.sh's multi-process GRPO phase (issue 19), with GPUS=2 on CPU: two gloo processes."""
    work = tmp_path / "work"
    env = {
        "PYTHON": sys.executable, "WORK": str(work), "GPUS": "2", "GRPO_MODEL": str(tiny_model_dir), "RL_STEPS": "1",
        "RL_ITEMS": "8", "RL_TOKENS": "24", "RL_DTYPE": "float32", "MASTER_PORT": str(free_port()),
    }
    done = bash(f"bash scripts/gpu_node_check.sh grpo {tmp_path / 'out'}", timeout=600, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "grpo wall s:" in (work / "out" / "walls.txt").read_text()
    assert json.loads((work / "out" / "grpo_summary.json").read_text())["steps"] == 1
    assert "world_size: 2" in (work / "grpo" / "swift.log").read_text()


def test_rl_check_stops_rl_at_its_deadline_and_evaluates_the_newest_checkpoint(tmp_path, tiny_model_dir):
    """scripts/gpu_rl_check.sh with RL_UNTIL (issue 15): a device session's time ends before RL would, so RL is stopped
    at the deadline and the eval still runs, on the newest checkpoint RL saved. Here on CPU, the tiny model standing
    in for the SFT checkpoint (SFT is skipped when one exists). The deadline comes from WORK/rl_until, which replaces
    RL_UNTIL: a later device call writes it once it knows the session's time left (the sixth GPU run did). Here it is
    written once the run has saved its first checkpoint: a fixed 75 s deadline came before the first save on a loaded
    machine (the run's start-up alone varies with the load)."""
    work = tmp_path / "work"
    (work / "sft-tool").mkdir(parents=True)
    (work / "sft-tool" / "last").symlink_to(tiny_model_dir)
    env = {
        "PYTHON": sys.executable, "WORK": str(work), "DEVICE": "cpu", "DTYPE": "float32", "VARIANTS": "acc_fmt",
        "RL_ITEMS": "8", "HELDOUT": "2", "RL_STEPS": "500", "RL_SAVE": "1", "RL_UNTIL": "5000", "RL_BATCH": "4",
        "ROLLOUTS": "2", "COMPLETION": "16", "TURNS": "2", "PIXELS": "50176", "EVAL_CONCURRENCY": "2",
    }
    started = time.monotonic()
    job = subprocess.Popen(["bash", "scripts/gpu_rl_check.sh", "all", str(tmp_path / "out")], cwd=REPO_ROOT, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, **env})
    checkpoints = work / "rl-acc_fmt-s7" / "checkpoints"
    while not any(checkpoints.glob("checkpoint-*/trainer_state.json")) and job.poll() is None \
            and time.monotonic() - started < 600:
        time.sleep(1)
    deadline = int(time.monotonic() - started) + 3  # the script counts from its own start, a moment after ours
    (work / "rl_until").write_text(f"{deadline}\n")
    output, _ = job.communicate(timeout=600)
    walls = (work / "out" / "walls.txt").read_text()
    assert job.returncode == 0, output[-3000:] + walls
    assert f"RL_UNTIL={deadline} s reached" in walls and time.monotonic() - started < 900
    evaluated = next(line for line in walls.splitlines() if line.startswith("eval-acc_fmt-s7: "))
    step = int(evaluated.rsplit("checkpoint-", 1)[1])
    assert 1 <= step < 500  # stopped part-way, and its newest checkpoint was what the eval loaded
    assert (work / "out" / "eval_acc_fmt-s7_results.json").is_file() and (work / "out" / "eval_sft_results.json").is_file()
    assert (work / "out" / "rl_acc_fmt-s7_logging.jsonl").is_file()  # the stopped run's log still came back
    assert not subprocess.run(["pgrep", "-f", f"{work}/rl-"], capture_output=True).stdout  # nothing left running


def test_rl_check_hands_rl_the_scripts_pixel_budget_dtype_and_resampling(tmp_path, tiny_model_dir):
    """The one-model-spec redesign dropped gpu_rl_check.sh's RL pixel budget and dtype without a word, and the device
    found out (RL at 64 visual tokens from an SFT at 256, in float32): the plan each RL run would launch must carry
    the script's PIXELS and DTYPE, not the nano recipes' CPU defaults (50176, float32), and RESAMPLE's flags."""
    work = tmp_path / "work"
    (work / "sft-tool").mkdir(parents=True)
    (work / "sft-tool" / "last").symlink_to(tiny_model_dir)
    (work / "rl-items").mkdir()  # a dry run checks no data
    env = {"PYTHON": sys.executable, "WORK": str(work), "VARIANTS": "acc_fmt bat", "RL_DRY_RUN": "1",
           "PIXELS": "200704", "DTYPE": "bfloat16", "RESAMPLE": "2", "RL_LR": "3e-6", "RL_BATCH": "48", "RL_MICRO": "16"}
    done = bash(f"bash scripts/gpu_rl_check.sh rl {tmp_path / 'out'}", timeout=300, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    logs = {variant: (work / "out" / f"rl-{variant}-s7.log").read_text() for variant in ("acc_fmt", "bat")}
    for variant, log in logs.items():
        assert "MAX_PIXELS=200704" in log, (variant, log[-2000:])
        # bf16 compute on float32 master weights: in pure bf16 most RL-sized updates round away (docs/paper-settings.md)
        assert "--torch_dtype float32 --bf16 true --fp16 false" in log, (variant, log[-2000:])
        assert "--dynamic_sample true --max_resample_times 2" in log and "--learning_rate 3e-06" in log, variant
        # 48 completions a step in 3 micro-batches of 16 (each run's activation memory a third)
        assert "--per_device_train_batch_size 16 --gradient_accumulation_steps 3" in log, variant
    assert not any((work / f"rl-{variant}-s7" / "checkpoints").exists() for variant in logs)  # nothing trained


def test_rl_check_await_brings_back_the_step_records_of_runs_still_going(tmp_path):
    """Each `await` call packs what the RL runs have logged so far, not only what a finished run copies: the sixth GPU
    run lost its machine between two calls, and with it every step record and rollout reward. The await call is not
    told the runs (a second seed here, which the default VARIANTS and RL_SEEDS do not name): it finds them."""
    import tarfile

    work = tmp_path / "work"
    run_dir = work / "rl-acc_fmt-s8"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "logging.jsonl").write_text('{"global_step/max_steps": "3/80", "reward": 0.5}\n')
    (run_dir / "rewards.jsonl").write_text('{"accuracy": 1.0}\n')
    (work / "out").mkdir()
    (work / "run.log").write_text("rl started\n")
    (work / "exit").write_text("0\n")  # the detached job has ended; `await` packs at once
    (work / "rl-items").mkdir()  # the RL items' folder, beside the runs: not a run
    env = {"PYTHON": sys.executable, "WORK": str(work), "WAIT": "5"}
    done = bash(f"bash scripts/gpu_rl_check.sh await {tmp_path / 'out'}", timeout=60, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    with tarfile.open(tmp_path / "out" / "gpu_rl.tar.gz") as packed:
        names = set(packed.getnames())
        assert {"out/rl_acc_fmt-s8_logging.jsonl", "out/rl_acc_fmt-s8_rewards.jsonl.gz"} <= names
        assert b'"reward": 0.5' in packed.extractfile("out/rl_acc_fmt-s8_logging.jsonl").read()


def test_rl_check_deadline_file_that_is_not_a_number_is_refused_in_one_line(tmp_path):
    """WORK/rl_until is typed by hand in a device call: a value that is not whole seconds is reported once, set aside,
    and the deadline stays RL_UNTIL (never 0, which bash's arithmetic would make of a word, stopping RL at once)."""
    (tmp_path / "out").mkdir()
    (tmp_path / "rl_until").write_text("soon\n")
    script = (
        f"WORK={tmp_path}; LOGS={tmp_path}/out; "
        "eval \"$(sed -n '/^stop_rl_at() {/,/^}/p' scripts/gpu_rl_check.sh)\"; "
        "SECONDS=0; stop_rl_at 2; echo \"stopped at $SECONDS\""
    )
    done = bash(script, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("is not a whole number of seconds") == 1
    assert f"{tmp_path}/rl_until: 'soon'" in done.stderr and "RL_UNTIL stays 2" in done.stderr
    assert (tmp_path / "rl_until.bad").is_file() and not (tmp_path / "rl_until").exists()
    assert 2 <= int(done.stdout.split()[-1]) < 10


def _fake_sft_checkpoint(work):
    """A checkpoint folder as `codedance sft` leaves it, `last` a link to it, with 2 MB of weights-like bytes."""
    import random

    checkpoint = work / "sft-tool" / "checkpoint-1000"
    checkpoint.mkdir(parents=True)
    (checkpoint / "config.json").write_text('{"model_type": "qwen2_5_vl"}')
    (checkpoint / "model.safetensors").write_bytes(random.Random(0).randbytes(2 << 20))
    (work / "sft-tool" / "last").symlink_to("checkpoint-1000")
    return checkpoint


def test_rl_check_sft_parts_restore_byte_for_byte_and_refuse_a_damaged_part(tmp_path):
    """pack-sft compresses the checkpoint into checksummed parts (clearing an older pack's); restore-sft on another
    machine's WORK puts the same bytes back and points sft-tool/last at them (so `train` skips SFT); a damaged part is
    refused in one line."""
    checkpoint = _fake_sft_checkpoint(tmp_path / "a")
    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "sft_ckpt.tar.xz.part-07").write_bytes(b"an older, longer pack's last part")
    packed = bash(f"bash scripts/gpu_rl_check.sh pack-sft {parts}", timeout=120,
                  env={"PYTHON": sys.executable, "WORK": str(tmp_path / "a")})
    assert packed.returncode == 0, packed.stdout + packed.stderr
    names = sorted(path.name for path in parts.iterdir())
    assert "sft_ckpt.sha256" in names and any(name.startswith("sft_ckpt.tar.") for name in names)
    assert not any(".tmp." in name for name in names) and "sft_ckpt.tar.xz.part-07" not in names
    restored = bash("bash scripts/gpu_rl_check.sh restore-sft", timeout=120,
                    env={"PYTHON": sys.executable, "WORK": str(tmp_path / "b"), "SFT_PARTS": str(parts)})
    assert restored.returncode == 0, restored.stdout + restored.stderr
    last = tmp_path / "b" / "sft-tool" / "last"
    assert (last / "model.safetensors").read_bytes() == (checkpoint / "model.safetensors").read_bytes()
    assert (last / "config.json").read_text() == (checkpoint / "config.json").read_text()
    first = sorted(parts.glob("sft_ckpt.tar.*.part-*"))[0]
    first.write_bytes(b"x" + first.read_bytes()[1:])
    damaged = bash("bash scripts/gpu_rl_check.sh restore-sft", timeout=120,
                   env={"PYTHON": sys.executable, "WORK": str(tmp_path / "c"), "SFT_PARTS": str(parts)})
    assert damaged.returncode == 2
    assert f"SFT checkpoint parts in {parts} fail their checksums" in damaged.stderr


def test_rl_check_await_sends_the_sft_parts_back_once(tmp_path):
    """The job packs the SFT checkpoint beside RL; the first `await` after that brings the parts back (a machine lost
    later then costs no SFT), and later awaits do not send the ~36 MB again unless RESEND_SFT asks."""
    work = tmp_path / "work"
    _fake_sft_checkpoint(work)
    env = {"PYTHON": sys.executable, "WORK": str(work), "WAIT": "5"}
    packed = bash(f"bash scripts/gpu_rl_check.sh pack-sft {work / 'sft-parts'}", timeout=120, env=env)
    assert packed.returncode == 0, packed.stdout + packed.stderr
    (work / "run.log").write_text("rl started\n")
    (work / "exit").write_text("0\n")
    first = bash(f"bash scripts/gpu_rl_check.sh await {tmp_path / 'out1'}", timeout=60, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    sent = sorted(path.name for path in (tmp_path / "out1").iterdir())
    assert "sft_ckpt.sha256" in sent and len([name for name in sent if ".part-" in name]) >= 1
    assert "SFT checkpoint parts sent back" in first.stdout
    again = bash(f"bash scripts/gpu_rl_check.sh await {tmp_path / 'out2'}", timeout=60, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert sorted(path.name for path in (tmp_path / "out2").iterdir()) == ["gpu_rl.tar.gz"]
    # a reply lost on our side: RESEND_SFT asks for the parts again
    resent = bash(f"bash scripts/gpu_rl_check.sh await {tmp_path / 'out3'}", timeout=60, env={**env, "RESEND_SFT": "1"})
    assert resent.returncode == 0, resent.stdout + resent.stderr
    assert sorted(path.name for path in (tmp_path / "out3").iterdir()) == sorted(sent)


def test_rl_check_evaluates_the_newest_whole_checkpoint_not_a_save_cut_short(tmp_path):
    """RL_UNTIL can stop a run in the middle of a save: the folder of that checkpoint exists without the trainer's
    trainer_state.json (written after the weights), so the eval takes the save before it."""
    checkpoints = tmp_path / "rl-bat-s7" / "checkpoints"
    for step, whole in ((5, True), (10, True), (15, False)):
        (checkpoints / f"checkpoint-{step}").mkdir(parents=True)
        if whole:
            (checkpoints / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    script = (f"WORK={tmp_path}; eval \"$(sed -n '/^rl_checkpoint() {{/,/^}}/p' scripts/gpu_rl_check.sh)\"; "
              "rl_checkpoint bat-s7; rl_checkpoint acc_fmt-s7; echo end")
    done = bash(script, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [str(checkpoints / "checkpoint-10"), "end"]
