"""Turn an item into an executed solution trajectory: run each code step in a real sandbox session.

The final answer written into the trajectory is the one the family reads back from
the real observations, and the trajectory is kept only when that equals the answer
known by construction, so a bug in a solution (or a sandbox difference) drops the
item instead of producing a wrong training example.
"""

from __future__ import annotations

from dataclasses import dataclass

from codedance_cli.loop.prompts import DEFAULT_VERSION, cell_text, system_prompt
from codedance_cli.procedural.base import ProceduralItem
from codedance_cli.procedural.registry import FAMILIES, item_to_task
from codedance_cli.sandbox.base import Sandbox
from codedance_cli.trajectory.schema import Observation, Trajectory, Turn


@dataclass
class SolveResult:
    """A verified trajectory, or why there is none."""

    trajectory: Trajectory | None
    reason: str | None = None  # 'code_failed', 'no_answer', 'wrong_answer' when trajectory is None


def code_turn_text(thought: str, code: str, version: str = DEFAULT_VERSION) -> str:
    """The assistant message that runs `code`, in the prompt version's turn format."""
    return f"<think>{thought}</think>\n{cell_text(code, version)}"


def answer_turn_text(thought: str, answer: str) -> str:
    return f"<think>{thought}</think>\n<answer>{answer}</answer>"


def fill_final_thought(template: str, answer: str, params: dict) -> str:
    values = {k: v for k, v in params.items() if isinstance(v, (str, int, float))}
    return template.format(answer=answer, **{k: v for k, v in values.items() if k != "answer"})


async def solve_item(item: ProceduralItem, sandbox: Sandbox, seed: int, index: int, version: str = DEFAULT_VERSION) -> SolveResult:
    """Execute the item's solution in a fresh session; a trajectory only if every step ran and the answer checks out."""
    task = item_to_task(item, seed, index)
    turns: list[Turn] = []
    observations: list[Observation] = []
    async with await sandbox.open_session(task.images) as session:
        for step in item.steps:
            observation = await session.run(step.code)
            turns.append(Turn(text=code_turn_text(step.thought, step.code, version), code=step.code, observation=observation))
            observations.append(observation)
            if not observation.ok:
                return SolveResult(None, "code_failed")
    answer = FAMILIES[item.family].read_answer(item, observations)
    if answer is None:
        return SolveResult(None, "no_answer")
    if answer.strip() != item.ground_truth:
        return SolveResult(None, "wrong_answer")
    turns.append(Turn(text=answer_turn_text(fill_final_thought(item.final_thought, answer, item.params), answer)))
    task.turns = turns
    task.final_answer = answer
    task.stop_reason = "answer"
    task.system_prompt = system_prompt(version)
    task.prompt_version = version
    return SolveResult(task)
