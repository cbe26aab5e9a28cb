"""What a procedural task family produces: an item that is correct by construction plus its solution.

A family draws an image from a seeded generator, knows the exact answer because it
drew the image, and writes the code a careful solver would run (crop, mask, count,
measure). Synthesis later runs that code in the real sandbox and asks the family to
read the answer back from the real output, so every stored trajectory is one whose
code actually produced the answer.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageFont

from codedance_cli.trajectory.schema import AnswerType, Observation

# Colours used by several families; names are what questions and answers say.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 200, 30),
    "purple": (150, 60, 190),
    "orange": (245, 130, 20),
    "cyan": (30, 190, 200),
}


@dataclass
class SolutionStep:
    """One assistant turn that runs code: the reasoning shown before it and the code itself."""

    thought: str
    code: str


@dataclass
class ProceduralItem:
    """A generated task with its exact answer and the code steps that obtain it."""

    family: str
    variant: str
    images: list[Image.Image]
    question: str
    ground_truth: str
    answer_type: AnswerType
    steps: list[SolutionStep]
    final_thought: str  # may contain {answer}, filled with the answer read from the real outputs
    choices: list[str] | None = None
    params: dict[str, Any] = field(default_factory=dict)  # difficulty knobs and construction facts


class TaskFamily(abc.ABC):
    """A kind of task: draws items and reads answers back from executed solution code."""

    name: str = ""
    description: str = ""

    @abc.abstractmethod
    def generate(self, rng: np.random.Generator) -> ProceduralItem:
        """A fresh item from `rng` (all randomness must come from it: same seed, same item)."""

    @abc.abstractmethod
    def read_answer(self, item: ProceduralItem, observations: list[Observation]) -> str | None:
        """The answer the executed solution's outputs support, or None when they do not support one."""


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled font at `size` (no system fonts needed, identical everywhere)."""
    return ImageFont.load_default(size=size)


def last_stdout(observations: list[Observation]) -> str:
    """Stdout of the last cell, the one whose print the final answer rests on."""
    return observations[-1].stdout if observations else ""


def near_rounding_boundary(value: float, decimals: int, margin: float = 0.15) -> bool:
    """True when `value` is within `margin` (in units of the last digit) of a .5 rounding boundary.

    Such values are redrawn: a sub-pixel measurement error must not flip the rounded answer.
    """
    scaled = value * 10**decimals
    return abs((scaled - np.floor(scaled)) - 0.5) < margin
