"""What `codedance sft` / `codedance rl` say when ms-swift fails: the exception a process raised, not torchrun's
wrapper or a line that merely contains the word "error"."""

from __future__ import annotations

from pathlib import Path

from codedance_cli.engines.swift.launch import error_hint

TORCHRUN_FAILURE = """\
[INFO:swift] rank: 0, local_rank: 0, world_size: 2, local_world_size: 2
ignore_args_error=False,
[rank1]: Traceback (most recent call last):
[rank1]:   File "swift/cli/sft.py", line 10, in <module>
[rank1]: AssertionError: Check batch related parameters. 4 != 2 * 1 * 1
[rank0]: AssertionError: Check batch related parameters. 4 != 2 * 1 * 1
Traceback (most recent call last):
  File "torch/distributed/elastic/multiprocessing/errors/__init__.py", line 367, in wrapper
    raise ChildFailedError(
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
  error_file: <N/A>
  traceback : To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html
"""


def test_the_process_exception_wins_over_torchruns_wrapper(tmp_path: Path) -> None:
    log = tmp_path / "swift.log"
    log.write_text(TORCHRUN_FAILURE)
    assert error_hint(log) == "[rank0]: AssertionError: Check batch related parameters. 4 != 2 * 1 * 1"


def test_without_an_exception_line_the_last_error_mention_then_the_last_line(tmp_path: Path) -> None:
    log = tmp_path / "swift.log"
    log.write_text("step 1\nsomething went wrong: error in the data\nstep 2\n")
    assert error_hint(log) == "something went wrong: error in the data"
    log.write_text("step 1\nKilled\n")
    assert error_hint(log) == "Killed"
    log.write_text("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\nlater line\n")
    assert error_hint(log).startswith("torch.OutOfMemoryError: CUDA out of memory")
