"""The three CodeDance teacher families and their prompt templates.

CodeDance decomposes hard items into executable trajectories of three kinds:
predefined visual operations, mathematical computation and open-ended operations.
The teacher gets the family's instruction appended to the question; the stored
trajectory keeps the plain question (the student never sees the instruction), and
records the family in metadata.
"""

from __future__ import annotations

from codedance_cli.trajectory.schema import Trajectory

TEMPLATES: dict[str, str] = {
    "visual_operations": (
        "Solve this with predefined visual operations in code: crop the region that matters, zoom in by resizing, "
        "rotate, adjust contrast or brightness, or draw boxes and marks on a copy of the image. Show every processed "
        "image with display() and look at it before you answer. Keep each step small and check its result."
    ),
    "math_computation": (
        "Solve this with mathematical computation in code: read the quantities you need from the image (measure "
        "pixels where the value is not printed), write them down as Python variables, compute the result with "
        "numpy/math/fractions, and print the intermediate values and the final number before you answer."
    ),
    "open_ended": (
        "Solve this with whatever custom code fits the problem best: colour masks and connected components for "
        "counting, pixel measurements, plots, auxiliary drawings or small simulations. Print (or display) the "
        "evidence your answer rests on, and verify it once before you answer."
    ),
}

# Which family suits each procedural task family (metadata "family").
PROCEDURAL_FAMILY_TEMPLATE = {
    "counting": "open_ended",
    "visual_search": "visual_operations",
    "charts": "math_computation",
    "geometry": "math_computation",
}


def template_name_for(task: Trajectory, setting: str) -> str:
    """The family for `task`: the recipe's choice, else the item's own tag, its procedural family, or its answer type."""
    if setting != "auto":
        return setting
    tagged = task.metadata.get("teacher_template")
    if tagged in TEMPLATES:
        return str(tagged)
    family = task.metadata.get("family")
    if family in PROCEDURAL_FAMILY_TEMPLATE:
        return PROCEDURAL_FAMILY_TEMPLATE[str(family)]
    return "math_computation" if task.answer_type == "number" else "visual_operations"


def teacher_task(task: Trajectory, template_name: str) -> Trajectory:
    """A copy of `task` whose question carries the family's instruction."""
    return task.model_copy(update={"question": f"{task.question}\n\n{TEMPLATES[template_name]}", "turns": []})
