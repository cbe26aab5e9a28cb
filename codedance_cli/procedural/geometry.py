"""Measurement and geometry: lengths against a scale bar and angles of a triangle, by arithmetic on pixels.

Points are coloured dots whose centres the code finds exactly (dot centroids), so the
answer follows from coordinates plus a little arithmetic (a ratio, an arccos). Values
that sit next to a rounding boundary are redrawn, so a sub-pixel error can never flip
the rounded answer.
"""

from __future__ import annotations

import math
import re

import numpy as np
from PIL import Image, ImageDraw

from codedance_cli.procedural.base import ProceduralItem, SolutionStep, TaskFamily, font, near_rounding_boundary
from codedance_cli.trajectory.schema import Observation

SIZE = (800, 600)
DOT_RADIUS = 6
VERTEX_RGB = {"A": (220, 40, 40), "B": (40, 160, 60), "C": (40, 80, 220)}
SEGMENT_END_RGB, SEGMENT_RGB, SCALE_RGB = (200, 30, 160), (240, 150, 200), (0, 0, 0)

CENTRES_CODE = """import numpy as np
import cv2

img = np.asarray(input_image.convert("RGB"))

def colour_mask(rgb, tolerance=12):
    rgb = np.array(rgb)
    return cv2.inRange(img, np.clip(rgb - tolerance, 0, 255).astype(np.uint8), np.clip(rgb + tolerance, 0, 255).astype(np.uint8))

def dot_centres(rgb):
    mask = colour_mask(rgb)
    n, _, stats, centres = cv2.connectedComponentsWithStats(mask)
    return [tuple(c) for c, area in zip(centres[1:], stats[1:, 4]) if area > 30]
"""

LENGTH_CODE = CENTRES_CODE + """
(x1, y1), (x2, y2) = dot_centres({end_rgb})
segment_px = float(np.hypot(x2 - x1, y2 - y1))
bar = colour_mask([0, 0, 0]) > 0
rows = np.nonzero(bar.sum(axis=1) > 40)[0]               # the scale bar is the long black horizontal run
bar_cols = np.nonzero(bar[rows[len(rows) // 2]])[0]
bar_px = float(bar_cols.max() - bar_cols.min() + 1)
print(f"segment: {{segment_px:.2f}} px; scale bar: {{bar_px:.0f}} px = {scale} {unit}")
print(f"length = {{segment_px / bar_px * {scale}:.1f}} {unit}")
"""

ANGLE_CODE = CENTRES_CODE + """
(ax, ay), = dot_centres({a_rgb})
(bx, by), = dot_centres({b_rgb})
(cx, cy), = dot_centres({c_rgb})
u = np.array([ax - bx, ay - by]); v = np.array([cx - bx, cy - by])
angle = np.degrees(np.arccos(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v))))
print(f"A=({{ax:.1f}}, {{ay:.1f}}) B=({{bx:.1f}}, {{by:.1f}}) C=({{cx:.1f}}, {{cy:.1f}})")
print(f"angle ABC = {{round(angle)}} degrees ({{angle:.2f}} before rounding)")
"""


class GeometryFamily(TaskFamily):
    name = "geometry"
    description = "Measure a length against a scale bar or an angle of a triangle from dot positions."

    def generate(self, rng: np.random.Generator) -> ProceduralItem:
        return self._length(rng) if rng.random() < 0.5 else self._angle(rng)

    def _length(self, rng: np.random.Generator) -> ProceduralItem:
        unit = str(rng.choice(["cm", "m", "km"]))
        scale = int(rng.choice([1, 2, 5, 10]))
        while True:
            bar_px = int(rng.integers(60, 160))
            p1 = (int(rng.integers(60, 740)), int(rng.integers(60, 460)))
            p2 = (int(rng.integers(60, 740)), int(rng.integers(60, 460)))
            length = math.dist(p1, p2) / bar_px * scale
            if math.dist(p1, p2) > 150 and not near_rounding_boundary(length, 1, margin=0.25):
                break
        image = _paper()
        draw = ImageDraw.Draw(image)
        draw.line([p1, p2], fill=SEGMENT_RGB, width=3)
        for p in (p1, p2):
            _dot(draw, p, SEGMENT_END_RGB)
        bx, by = 40, 545
        draw.rectangle([bx, by, bx + bar_px - 1, by + 5], fill=SCALE_RGB)
        draw.text((bx + bar_px + 10, by + 3), f"{scale} {unit}", fill=(60, 60, 60), font=font(14), anchor="lm")
        answer = f"{length:.1f}"
        return ProceduralItem(
            family=self.name,
            variant="length",
            images=[image],
            question=f"The scale bar at the bottom left represents {scale} {unit}. How long is the pink segment between the two "
            f"magenta dots, in {unit}? Answer to one decimal place.",
            ground_truth=answer,
            answer_type="number",
            steps=[
                SolutionStep(
                    thought="Estimating the ratio by eye would be rough; I will find the two endpoint dots and the scale bar in "
                    "pixels and convert the distance with the bar's length.",
                    code=LENGTH_CODE.format(end_rgb=list(SEGMENT_END_RGB), scale=scale, unit=unit),
                )
            ],
            final_thought=f"The code printed length = {{answer}} {unit}, the segment's pixel length over the scale bar's times "
            f"{scale} {unit}, so the answer is {{answer}}.",
            params={"scale": scale, "unit": unit, "bar_px": bar_px, "p1": list(p1), "p2": list(p2), "exact": length},
        )

    def _angle(self, rng: np.random.Generator) -> ProceduralItem:
        while True:
            pts = {k: (int(rng.integers(80, 720)), int(rng.integers(80, 520))) for k in "ABC"}
            sides = [math.dist(pts["A"], pts["B"]), math.dist(pts["B"], pts["C"]), math.dist(pts["A"], pts["C"])]
            if min(sides) < 160:
                continue
            angle = _angle_deg(pts["A"], pts["B"], pts["C"])
            if 15 < angle < 165 and not near_rounding_boundary(angle, 0, margin=0.2):
                break
        image = _paper()
        draw = ImageDraw.Draw(image)
        draw.polygon([pts["A"], pts["B"], pts["C"]], outline=(90, 90, 90), width=2)
        for name, p in pts.items():
            _dot(draw, p, VERTEX_RGB[name])
            draw.text((p[0] + 10, p[1] - 18), name, fill=(30, 30, 30), font=font(16))
        answer = str(round(angle))
        return ProceduralItem(
            family=self.name,
            variant="angle",
            images=[image],
            question="Triangle ABC is drawn with its vertices marked by coloured dots (A red, B green, C blue). "
            "What is the angle ABC in degrees, to the nearest whole degree?",
            ground_truth=answer,
            answer_type="number",
            steps=[
                SolutionStep(
                    thought="A protractor-style guess from the picture could be off by several degrees; I will locate the three "
                    "vertex dots and compute the angle at B from the vectors BA and BC.",
                    code=ANGLE_CODE.format(a_rgb=list(VERTEX_RGB["A"]), b_rgb=list(VERTEX_RGB["B"]), c_rgb=list(VERTEX_RGB["C"])),
                )
            ],
            final_thought="The code printed angle ABC = {answer} degrees from the vectors BA and BC, so the answer is {answer}.",
            params={"points": {k: list(v) for k, v in pts.items()}, "exact": angle},
        )

    def read_answer(self, item: ProceduralItem, observations: list[Observation]) -> str | None:
        stdout = observations[-1].stdout if observations else ""
        pattern = r"^length = ([\d.]+) " if item.variant == "length" else r"^angle ABC = (\d+) degrees"
        found = re.search(pattern, stdout, re.MULTILINE)
        return found.group(1) if found else None


def _paper() -> Image.Image:
    """Light squared paper: some texture without colours that collide with the dots."""
    image = Image.new("RGB", SIZE, (252, 252, 250))
    draw = ImageDraw.Draw(image)
    for x in range(0, SIZE[0], 25):
        draw.line([(x, 0), (x, SIZE[1])], fill=(225, 232, 240))
    for y in range(0, SIZE[1], 25):
        draw.line([(0, y), (SIZE[0], y)], fill=(225, 232, 240))
    return image


def _dot(draw: ImageDraw.ImageDraw, p: tuple[int, int], rgb: tuple[int, int, int]) -> None:
    x, y = p
    draw.ellipse([x - DOT_RADIUS, y - DOT_RADIUS, x + DOT_RADIUS, y + DOT_RADIUS], fill=rgb)


def _angle_deg(a: tuple[int, int], b: tuple[int, int], c: tuple[int, int]) -> float:
    u, v = np.subtract(a, b), np.subtract(c, b)
    return float(np.degrees(np.arccos(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v)))))
