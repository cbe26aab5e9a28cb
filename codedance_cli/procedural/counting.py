"""Counting: dozens of small non-overlapping shapes in several colours; count one colour (and shape).

Too many small shapes to count reliably by eye at the model's image resolution, but
exact with a colour mask and connected components. Shapes are drawn without
anti-aliasing in pure palette colours, so the mask is exact; the shape is told
apart by how much of its bounding box it fills (square ~1, circle ~0.79, triangle ~0.5).
"""

from __future__ import annotations

import re

import numpy as np
from PIL import Image, ImageDraw

from codedance_cli.procedural.base import PALETTE, ProceduralItem, SolutionStep, TaskFamily, last_stdout
from codedance_cli.trajectory.schema import Observation

SHAPES = ("circle", "square", "triangle")
LEVELS = {  # level -> (canvas, shapes on canvas, size range px, colours used)
    1: (640, (18, 30), (22, 34), 3),
    2: (768, (30, 50), (16, 26), 4),
    3: (896, (50, 80), (12, 20), 6),
}

COUNT_CODE = """import numpy as np
import cv2

img = np.asarray(input_image.convert("RGB"))
target = np.array({rgb})
mask = cv2.inRange(img, np.clip(target - 25, 0, 255).astype(np.uint8), np.clip(target + 25, 0, 255).astype(np.uint8))
n, labels, stats, centroids = cv2.connectedComponentsWithStats(mask, connectivity=8)
counts = {{"circle": 0, "square": 0, "triangle": 0}}
for x, y, w, h, area in stats[1:]:
    if area < 15:  # stray pixels, not a shape
        continue
    fill = area / float(w * h)
    kind = "square" if fill > 0.9 else ("circle" if fill > 0.65 else "triangle")
    counts[kind] += 1
print("{colour} shapes by kind:", counts)
print("{label}:", {expression})
"""

OVERLAY_CODE = """from PIL import ImageDraw

overlay = input_image.convert("RGB").copy()
draw = ImageDraw.Draw(overlay)
for x, y, w, h, area in stats[1:]:
    if area >= 15:
        draw.rectangle([x - 3, y - 3, x + w + 2, y + h + 2], outline=(0, 0, 0), width=2)
overlay.thumbnail((448, 448))
print("boxed", int((stats[1:, 4] >= 15).sum()), "{colour} components")
display(overlay)
"""


class CountingFamily(TaskFamily):
    name = "counting"
    description = "Count the shapes of one colour (optionally one kind) among many small shapes."

    def generate(self, rng: np.random.Generator) -> ProceduralItem:
        level = int(rng.integers(1, 4))
        size, (lo, hi), (smin, smax), n_colours = LEVELS[level]
        colours = list(rng.choice(list(PALETTE), size=n_colours, replace=False))
        image = Image.new("RGB", (size, size), (250, 250, 248))
        draw = ImageDraw.Draw(image)
        placed: list[tuple[int, int, int, int, str, str]] = []
        target_total = int(rng.integers(lo, hi + 1))
        attempts = 0
        while len(placed) < target_total and attempts < target_total * 60:
            attempts += 1
            side = int(rng.integers(smin, smax + 1))
            x, y = int(rng.integers(4, size - side - 4)), int(rng.integers(4, size - side - 4))
            if any(x < px + ps + 6 and px < x + side + 6 and y < py + ps + 6 and py < y + side + 6 for px, py, ps, _, _, _ in placed):
                continue
            shape, colour = str(rng.choice(SHAPES)), str(rng.choice(colours))
            _draw_shape(draw, shape, x, y, side, PALETTE[colour])
            placed.append((x, y, side, 0, shape, colour))
        colour = str(rng.choice(colours))
        by_kind = rng.random() < 0.6
        shape = str(rng.choice(SHAPES)) if by_kind else None
        answer = sum(1 for p in placed if p[5] == colour and (shape is None or p[4] == shape))
        if answer == 0:  # a question whose answer is 0 teaches little; ask about the whole colour
            shape, by_kind = None, False
            answer = sum(1 for p in placed if p[5] == colour)
        noun = f"{colour} {shape}s" if shape else f"{colour} shapes (of any kind)"
        question = f"How many {noun} are there in the image? Answer with a single number."
        label = f"{colour} {shape}s" if shape else f"{colour} shapes"
        expression = f'counts["{shape}"]' if shape else "sum(counts.values())"
        steps = [
            SolutionStep(
                thought=(
                    f"The image has {len(placed)} small shapes in {n_colours} colours; counting the {noun} by eye is "
                    f"error-prone, so I will mask the {colour} pixels, count connected components and tell the kinds "
                    "apart by how much of its bounding box each one fills (square ~1, circle ~0.79, triangle ~0.5)."
                ),
                code=COUNT_CODE.format(rgb=list(PALETTE[colour]), colour=colour, label=label, expression=expression),
            )
        ]
        if level >= 2 and rng.random() < 0.5:
            steps.append(
                SolutionStep(
                    thought=f"Before answering, I will draw a box around every {colour} component to check that none was merged or missed.",
                    code=OVERLAY_CODE.format(colour=colour),
                )
            )
            final = (f"The code printed {label}: {{answer}}, and the boxed overlay shows every {colour} shape separated, "
                     "so the answer is {answer}.")
        else:
            final = f"The code printed {label}: {{answer}} from the connected components, so the answer is {{answer}}."
        return ProceduralItem(
            family=self.name,
            variant="shape" if shape else "colour",
            images=[image],
            question=question,
            ground_truth=str(answer),
            answer_type="number",
            steps=steps,
            final_thought=final,
            params={"level": level, "canvas": size, "num_shapes": len(placed), "num_colours": n_colours,
                    "shape_size": [smin, smax], "colour": colour, "shape": shape},
        )

    def read_answer(self, item: ProceduralItem, observations: list[Observation]) -> str | None:
        first = observations[0].stdout if observations else ""
        match = re.search(r"^[a-z ]+s: (\d+)\s*$", first, re.MULTILINE)
        if match is None:
            return None
        if len(observations) > 1 and "boxed " not in last_stdout(observations):
            return None
        return match.group(1)


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, x: int, y: int, side: int, rgb: tuple[int, int, int]) -> None:
    if shape == "circle":
        draw.ellipse([x, y, x + side - 1, y + side - 1], fill=rgb)
    elif shape == "square":
        draw.rectangle([x, y, x + side - 1, y + side - 1], fill=rgb)
    else:
        draw.polygon([(x, y + side - 1), (x + side - 1, y + side - 1), (x + (side - 1) / 2, y)], fill=rgb)
