"""The shared plumbing leaves (codedance_cli/common): atomic files, bounded concurrency, the progress bar.

Real files in tmp_path, real asyncio event loops, a real rich Console writing to a string.
"""

from __future__ import annotations

import asyncio
import io
import os
import random
from contextlib import aclosing
from pathlib import Path

import pytest
from rich.console import Console

from codedance_cli.common.atomic import AtomicFile, atomic_symlink, atomic_write_bytes, atomic_write_text
from codedance_cli.common.concurrency import bounded_map
from codedance_cli.common.progress import progress_bar



def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# --- atomic -----------------------------------------------------------------------------------------


def test_atomic_write_text_and_bytes_create_parents_replace_and_leave_no_temp(tmp_path):
    target = tmp_path / "a" / "b" / "report.json"
    assert atomic_write_text(target, "first\n") == target
    assert target.read_text() == "first\n"
    atomic_write_text(target, "second ü\n", fsync=True)
    assert target.read_text(encoding="utf-8") == "second ü\n"
    blob = tmp_path / "plot.png"
    atomic_write_bytes(blob, b"\x89PNG\x00\xff")
    assert blob.read_bytes() == b"\x89PNG\x00\xff"
    assert leftovers(target.parent) == [] and leftovers(tmp_path) == []


def test_atomic_files_get_the_umask_mode_like_a_plain_open(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "shared.html", "<html>")
    finally:
        os.umask(old)
    assert (tmp_path / "shared.html").stat().st_mode & 0o777 == 0o644


def test_a_failed_write_keeps_the_old_content_and_removes_the_temp(tmp_path):
    target = tmp_path / "results.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with AtomicFile(target, "w") as handle:
            handle.write("half a new fi")
            assert leftovers(tmp_path)  # the temp exists beside the target while writing
            raise RuntimeError("disk on fire")
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "text is not bytes")  # type: ignore[arg-type]
    assert target.read_text() == "old" and leftovers(tmp_path) == []


def test_atomic_file_commit_and_discard_by_hand(tmp_path):
    kept, dropped = tmp_path / "kept.jsonl", tmp_path / "dropped.jsonl"
    dropped.write_text("previous")
    log = AtomicFile(kept, "w")
    log.handle.write('{"row": 1}\n')
    assert not kept.exists()
    assert log.commit() == kept and kept.read_text() == '{"row": 1}\n'
    other = AtomicFile(dropped, "wb")
    other.handle.write(b"never seen")
    other.discard()
    assert dropped.read_text() == "previous" and leftovers(tmp_path) == []
    with pytest.raises(ValueError, match="mode"):
        AtomicFile(tmp_path / "x", "a")


def test_atomic_symlink_replaces_an_existing_link_and_keeps_relative_targets(tmp_path):
    (tmp_path / "checkpoint-1").mkdir()
    (tmp_path / "checkpoint-2").mkdir()
    link = tmp_path / "last"
    atomic_symlink(link, "checkpoint-1")
    assert os.readlink(link) == "checkpoint-1" and link.resolve() == tmp_path / "checkpoint-1"
    assert atomic_symlink(link, Path("checkpoint-2")) == link
    assert os.readlink(link) == "checkpoint-2"
    assert leftovers(tmp_path) == []


# --- concurrency ------------------------------------------------------------------------------------


class Tracker:
    """Counts calls in flight and items pulled from the input, both at their peaks."""

    def __init__(self) -> None:
        self.in_flight = self.peak = self.pulled = self.yielded = self.peak_unyielded = 0
        self.cancelled = 0

    def items(self, n: int):
        for i in range(n):
            self.pulled += 1
            self.peak_unyielded = max(self.peak_unyielded, self.pulled - self.yielded)
            yield i

    async def work(self, i: int, seconds: float | None = None) -> int:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(random.Random(i).uniform(0, 0.01) if seconds is None else seconds)
            return i * i
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1


@pytest.mark.parametrize("ordered", [False, True])
def test_bounded_map_never_exceeds_the_limit_and_yields_every_result(ordered):
    tracker = Tracker()

    async def go():
        out = []
        async for item, result in bounded_map(tracker.items(60), tracker.work, 4, ordered=ordered):
            tracker.yielded += 1
            out.append((item, result))
        return out

    out = asyncio.run(go())
    assert sorted(out) == [(i, i * i) for i in range(60)]
    assert tracker.peak == 4 and tracker.in_flight == 0
    assert tracker.peak_unyielded <= 5  # lazy: an item is pulled only when a slot frees (+1 for the one being handed out)
    if ordered:
        assert [item for item, _ in out] == list(range(60))
    else:
        assert [item for item, _ in out] != list(range(60))  # random delays: completion order differs


def test_bounded_map_completion_order_ties_follow_input_order_and_limit_below_one_means_one():
    async def same(i: int) -> int:
        await asyncio.sleep(0)
        return i

    async def go(limit):
        return [item async for item, _ in bounded_map(range(10), same, limit)]

    assert asyncio.run(go(10)) == list(range(10))
    assert asyncio.run(go(0)) == list(range(10))


def test_bounded_map_an_error_propagates_and_cancels_the_calls_still_running():
    tracker = Tracker()

    async def work(i: int) -> int:
        if i == 3:
            await asyncio.sleep(0.005)
            raise ValueError("item 3 is bad")
        tracker.in_flight += 1
        try:
            await asyncio.sleep(10)
            return i
        except asyncio.CancelledError:
            tracker.cancelled += 1
            raise
        finally:
            tracker.in_flight -= 1

    async def go():
        async with aclosing(bounded_map(range(100), work, 5)) as results:
            async for _ in results:
                pass

    with pytest.raises(ValueError, match="item 3"):
        asyncio.run(go())
    assert tracker.cancelled == 4 and tracker.in_flight == 0


def test_bounded_map_break_under_aclosing_and_cancelling_the_consumer_stop_the_calls_in_flight():
    tracker = Tracker()

    async def slow(i: int) -> int:
        return 0 if i == 0 else await tracker.work(i, 10)

    async def take_first():
        async with aclosing(bounded_map(range(100), slow, 3)) as results:
            async for item, _ in results:
                assert tracker.in_flight == 2
                break
        return tracker.in_flight  # already 0: closing awaited the cancelled calls

    assert asyncio.run(take_first()) == 0
    assert tracker.cancelled == 2

    tracker = Tracker()

    async def consume():
        async for _ in bounded_map(tracker.items(100), lambda i: tracker.work(i, 10), 3):
            pass

    async def cancel_consumer():
        consumer = asyncio.ensure_future(consume())
        await asyncio.sleep(0.05)
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer
        return tracker.in_flight

    assert asyncio.run(cancel_consumer()) == 0
    assert tracker.pulled == 3 and tracker.cancelled == 3


def test_bounded_map_an_error_from_the_input_stream_cancels_what_started():
    tracker = Tracker()
    seen = []

    def items():
        yield 1
        yield 2
        raise OSError("unreadable shard")

    async def go():
        async for item, _ in bounded_map(items(), lambda i: tracker.work(i, 0.01 if i == 1 else 10), 2):
            seen.append(item)

    with pytest.raises(OSError, match="unreadable shard"):
        asyncio.run(go())
    assert seen == [1] and tracker.in_flight == 0 and tracker.cancelled == 1


# --- progress ---------------------------------------------------------------------------------------


def plain_console() -> tuple[Console, io.StringIO]:
    sink = io.StringIO()
    return Console(file=sink, force_terminal=False, width=100), sink


def test_progress_bar_on_a_non_terminal_prints_the_final_state_once():
    console, sink = plain_console()
    with progress_bar("synth", console) as progress:
        bar = progress.add_task("procedural", total=3)
        for _ in range(3):
            progress.advance(bar, 1)
        assert sink.getvalue() == ""  # nothing while running: no redraws in a log file
    lines = sink.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("synth procedural") and "3/3" in lines[0] and "0:00:00" in lines[0]


def test_progress_bar_status_column_unknown_total_transient_and_disabled():
    console, sink = plain_console()
    with progress_bar("tool eval", console, status=True) as progress:
        bar = progress.add_task("", total=None, status="")
        progress.update(bar, advance=2, status="answered 1, errors 1")
    assert "2/?" in sink.getvalue() and "answered 1, errors 1" in sink.getvalue()
    for flags in ({"transient": True}, {"disable": True}):
        console, sink = plain_console()
        with progress_bar("export", console, **flags) as progress:
            task = progress.add_task("trajectories", total=None)
            progress.advance(task)
        assert sink.getvalue().strip() == ""  # (rich ends a transient live display with a bare newline)
        assert progress.tasks[0].completed == 1


def test_progress_bar_title_is_not_read_as_markup():
    console, sink = plain_console()
    with progress_bar("import [data]", console) as progress:
        progress.add_task("x", total=1, completed=1)
    assert sink.getvalue().startswith("import [data] x")
