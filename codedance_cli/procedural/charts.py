"""Chart reading: exact values from generated bar and line charts, then arithmetic on them.

Charts carry no value labels, only gridlines every fifth of the axis, so an exact
integer is out of reach by eye; the pixel geometry gives it exactly: the y-axis tick
marks calibrate pixels to units, and bar tops / marker centres convert to values.
Charts are drawn with PIL (not matplotlib) so the pixel layout is exact and identical
on every machine.
"""

from __future__ import annotations

import re

import numpy as np
from PIL import Image, ImageDraw

from codedance_cli.procedural.base import ProceduralItem, SolutionStep, TaskFamily, font
from codedance_cli.trajectory.schema import Observation

WIDTH, HEIGHT = 760, 500
LEFT, RIGHT, TOP, BOTTOM = 80, WIDTH - 30, 60, HEIGHT - 70
BAR_RGB, LINE_RGB, MARKER_RGB = (70, 130, 180), (120, 170, 230), (200, 50, 50)
CATEGORY_SETS = [
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
    ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
    ["apple", "pear", "plum", "kiwi", "fig", "lime", "date", "mango", "grape", "peach"],
    ["A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "L"],
]
TITLES = ["Monthly sales", "Visitors per day", "Units shipped", "Orders by region", "Average score"]
YMAX = (40, 50, 80, 100)

CALIBRATE_CODE = """import numpy as np
import cv2

img = np.asarray(input_image.convert("RGB"))
dark = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) < 70
axis_col = int(dark.sum(axis=0).argmax())          # the y-axis is the longest dark column
ticks = np.nonzero(dark[:, axis_col - 4])[0]         # tick marks stick out left of the axis
zero_row, top_row = int(ticks.max()), int(ticks.min())
units_per_px = {ymax} / (zero_row - top_row)
labels = {labels}
"""

BAR_CODE = CALIBRATE_CODE + """rgb = np.array({rgb})
bar = cv2.inRange(img, (rgb - 12).astype(np.uint8), (rgb + 12).astype(np.uint8)) > 0
cols = np.nonzero(bar.any(axis=0))[0]
groups = np.split(cols, np.nonzero(np.diff(cols) > 1)[0] + 1)
values = {{}}
for label, group in zip(labels, groups):
    top = int(np.nonzero(bar[:, group].any(axis=1))[0].min())
    values[label] = round((zero_row - top) * units_per_px)
print(f"axis at x={{axis_col}}, 0 at row {{zero_row}}, {ymax} at row {{top_row}}")
print("values:", values)
"""

LINE_CODE = CALIBRATE_CODE + """rgb = np.array({rgb})
marker = cv2.inRange(img, (rgb - 12).astype(np.uint8), (rgb + 12).astype(np.uint8))
n, _, stats, centres = cv2.connectedComponentsWithStats(marker)
points = sorted((float(cx), float(cy)) for (cx, cy), area in zip(centres[1:], stats[1:, 4]) if area > 20)
values = {{label: round((zero_row - cy) * units_per_px) for label, (cx, cy) in zip(labels, points)}}
print(f"axis at x={{axis_col}}, 0 at row {{zero_row}}, {ymax} at row {{top_row}}; {{len(points)}} markers")
print("values:", values)
"""

QUESTIONS = {  # kind -> (question, final code line)
    "value": ("What is the exact value for {a}?", 'print("answer =", values["{a}"])'),
    "range": ("What is the difference between the largest and the smallest value in the chart?",
              'print("answer =", max(values.values()) - min(values.values()))'),
    "sum": ("What is the sum of the values for {a} and {b}?", 'print("answer =", values["{a}"] + values["{b}"])'),
    "rank": ("Which category has the second-largest value?", 'print("answer =", sorted(values, key=values.get)[-2])'),
}


class ChartFamily(TaskFamily):
    name = "charts"
    description = "Read exact values off bar/line charts without value labels and combine them."

    def generate(self, rng: np.random.Generator) -> ProceduralItem:
        kind = "bar" if rng.random() < 0.55 else "line"
        categories = CATEGORY_SETS[int(rng.integers(0, len(CATEGORY_SETS)))]
        n = int(rng.integers(5, min(len(categories), 12) + 1))
        labels = categories[:n] if rng.random() < 0.5 else [str(c) for c in rng.choice(categories, size=n, replace=False)]
        ymax = int(rng.choice(YMAX))
        values = _distinct_values(rng, n, ymax)
        title = str(rng.choice(TITLES))
        image = _draw_chart(kind, labels, values, ymax, title)
        question_kind = str(rng.choice(list(QUESTIONS)))
        a, b = (str(x) for x in rng.choice(labels, size=2, replace=False))
        template, final_line = QUESTIONS[question_kind]
        truth = {
            "value": lambda: values[labels.index(a)],
            "range": lambda: max(values) - min(values),
            "sum": lambda: values[labels.index(a)] + values[labels.index(b)],
            "rank": lambda: labels[int(np.argsort(values)[-2])],
        }[question_kind]()
        step = ymax // 5
        code = (BAR_CODE if kind == "bar" else LINE_CODE).format(ymax=ymax, labels=labels, rgb=list(BAR_RGB if kind == "bar" else MARKER_RGB))
        code += final_line.format(a=a, b=b) + "\n"
        what = "bar tops" if kind == "bar" else "marker centres"
        return ProceduralItem(
            family=self.name,
            variant=f"{kind}-{question_kind}",
            images=[image],
            question=f"The {kind} chart '{title}' has no value labels. " + template.format(a=a, b=b)
            + (" Answer with the category name." if question_kind == "rank" else " Answer with an integer."),
            ground_truth=str(truth),
            answer_type="text" if question_kind == "rank" else "number",
            steps=[
                SolutionStep(
                    thought=(
                        f"The y-axis is labelled 0 to {ymax} in steps of {step}, and the categories from left to right are "
                        f"{', '.join(labels)}. Gridlines alone are too coarse for exact values, so I will calibrate pixels to "
                        f"units with the axis tick marks and convert the {what} into values."
                    ),
                    code=code,
                )
            ],
            final_thought="The code printed answer = {answer}, from values measured as exact integers, so the answer is {answer}.",
            params={"chart": kind, "question": question_kind, "num_categories": n, "ymax": ymax,
                    "values": dict(zip(labels, values))},
        )

    def read_answer(self, item: ProceduralItem, observations: list[Observation]) -> str | None:
        found = re.search(r"^answer = (.+?)\s*$", observations[-1].stdout if observations else "", re.MULTILINE)
        return found.group(1) if found else None


def _distinct_values(rng: np.random.Generator, n: int, ymax: int) -> list[int]:
    """Integers in [3, ymax-2] at least 2 apart, so ranks are unambiguous."""
    while True:
        values = [int(v) for v in rng.integers(3, ymax - 1, size=n)]
        ordered = sorted(values)
        if all(b - a >= 2 for a, b in zip(ordered, ordered[1:])):
            return values


def _draw_chart(kind: str, labels: list[str], values: list[int], ymax: int, title: str) -> Image.Image:
    image = Image.new("RGB", (WIDTH, HEIGHT), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    px_per_unit = (BOTTOM - TOP) / ymax
    label_font, title_font = font(13), font(18)
    draw.text((WIDTH / 2, 22), title, fill=(30, 30, 30), font=title_font, anchor="mm")
    for k in range(6):
        row = round(BOTTOM - k * ymax / 5 * px_per_unit)
        if k:
            draw.line([(LEFT + 1, row), (RIGHT, row)], fill=(228, 228, 228), width=1)
        draw.line([(LEFT - 6, row), (LEFT - 1, row)], fill=(40, 40, 40), width=1)
        draw.text((LEFT - 10, row), str(k * ymax // 5), fill=(40, 40, 40), font=label_font, anchor="rm")
    slot = (RIGHT - LEFT) / len(labels)
    centres = [round(LEFT + slot * (i + 0.5)) for i in range(len(labels))]
    tops = [round(BOTTOM - v * px_per_unit) for v in values]
    if kind == "bar":
        half = max(3, round(slot * 0.3))
        for cx, top in zip(centres, tops):
            draw.rectangle([cx - half, top, cx + half, BOTTOM - 1], fill=BAR_RGB)
    else:
        draw.line(list(zip(centres, tops)), fill=LINE_RGB, width=2)
        for cx, top in zip(centres, tops):
            draw.ellipse([cx - 5, top - 5, cx + 5, top + 5], fill=MARKER_RGB)
    draw.line([(LEFT, TOP - 10), (LEFT, BOTTOM)], fill=(40, 40, 40), width=1)
    draw.line([(LEFT, BOTTOM), (RIGHT, BOTTOM)], fill=(40, 40, 40), width=1)
    for cx, label in zip(centres, labels):
        draw.text((cx, BOTTOM + 16), label, fill=(40, 40, 40), font=label_font, anchor="mm")
    return image
