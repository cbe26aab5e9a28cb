"""The procedural generator: reproducible, correct by construction, and solved by really executing its code."""

from __future__ import annotations

import asyncio

import pytest

from codedance_cli.errors import BadInput
from codedance_cli.procedural import FAMILIES, generate_item, item_to_task, make_tasks
from codedance_cli.procedural.solve import solve_item
from codedance_cli.sandbox import create_sandbox
from codedance_cli.trajectory.schema import Observation


def test_same_seed_same_item_other_seed_other_item() -> None:
    for index in range(4):
        a, b = item_to_task(generate_item(7, index), 7, index), item_to_task(generate_item(7, index), 7, index)
        assert a == b
        other = item_to_task(generate_item(8, index), 8, index)
        assert other.images != a.images


def test_make_tasks_are_tasks_with_metadata() -> None:
    tasks = make_tasks(8, seed=11)
    assert [t.metadata["family"] for t in tasks[:4]] == list(FAMILIES)
    assert len({t.task_id for t in tasks}) == 8
    for task in tasks:
        assert task.turns == [] and task.images and task.ground_truth
        assert task.metadata["source"] == "procedural" and task.metadata["seed"] == 11
        assert "level" in task.metadata["difficulty_params"] or task.metadata["family"] in ("charts", "geometry")
        if task.answer_type == "choice":
            assert task.choices and task.ground_truth in "ABCD"
    only = make_tasks(4, seed=11, families=["geometry"])
    assert {t.metadata["family"] for t in only} == {"geometry"}
    with pytest.raises(BadInput, match="unknown procedural family"):
        make_tasks(1, families=["countin"])


def test_images_need_a_closer_look() -> None:
    """Search targets are tiny relative to the image; counting has many shapes; charts carry no value labels."""
    for index in range(16):
        item = generate_item(0, index)
        width, height = item.images[0].size
        if item.family == "visual_search":
            assert width * height >= 1280 * 1280  # far above the model's default pixel budget (~1M)
        if item.family == "counting":
            assert item.params["num_shapes"] >= 18
        if item.family == "charts":
            assert "no value labels" in item.question


def test_solutions_execute_in_the_sandbox_and_verify() -> None:
    async def solve_all():
        async with create_sandbox() as sandbox:
            return await asyncio.gather(*(solve_item(generate_item(5, i), sandbox, 5, i) for i in range(8)))

    results = asyncio.run(solve_all())
    assert [r.reason for r in results] == [None] * 8
    families = set()
    for result in results:
        traj = result.trajectory
        assert traj is not None and traj.final_answer == traj.ground_truth
        families.add(traj.metadata["family"])
        code_turns = [t for t in traj.turns if t.code]
        assert code_turns and all(t.observation.ok and t.observation.duration_s > 0 for t in code_turns)
        if traj.metadata["variant"] == "text":
            assert code_turns[-1].observation.images  # the zoomed crop was really displayed
    assert families == set(FAMILIES)


def test_read_answer_follows_the_output_not_the_construction() -> None:
    item = next(generate_item(0, i) for i in range(8) if generate_item(0, i).family == "charts")
    family = FAMILIES["charts"]
    assert family.read_answer(item, [Observation(stdout="values: {}\nanswer = 12345\n")]) == "12345"
    assert family.read_answer(item, [Observation(stdout="nothing useful")]) is None
