"""Visual search (V*-style): a tiny marked target in a large, busy image; the answer needs a crop/zoom.

Two variants:
- `text`: several small outlined boxes hold short codes in a ~10 px font; the question
  asks for the code in the box outlined in one colour. Downscaled to the model's pixel
  budget the text is unreadable; the solution locates the outline by colour, crops
  and enlarges it, and reads the code from the zoomed crop it displays.
- `colour`: a thin ring marks one tiny square among many; the question asks its colour
  (multiple choice). The solution finds the ring, samples the pixels inside it and
  prints the nearest palette colour.
"""

from __future__ import annotations

import re
import string

import numpy as np
from PIL import Image, ImageDraw

from codedance_cli.procedural.base import PALETTE, ProceduralItem, SolutionStep, TaskFamily, font
from codedance_cli.trajectory.schema import Observation

CODE_ALPHABET = "".join(ch for ch in string.ascii_uppercase + string.digits if ch not in "0O1IL5S8B")
OUTLINES = {"red": (230, 0, 0), "blue": (0, 60, 230), "green": (0, 170, 0), "magenta": (220, 0, 220)}
RING_RGB = (255, 0, 0)
LEVELS = {1: (1280, 12), 2: (1600, 11), 3: (2048, 10)}  # level -> (canvas side, font size)

FIND_BOX_CODE = """import numpy as np
import cv2

img = np.asarray(input_image.convert("RGB"))
rgb = np.array({rgb})
outline = cv2.inRange(img, np.clip(rgb - 15, 0, 255).astype(np.uint8), np.clip(rgb + 15, 0, 255).astype(np.uint8))
x, y, w, h = cv2.boundingRect(cv2.findNonZero(outline))
x0, y0, x1, y1 = x, y, x + w - 1, y + h - 1
print(f"{colour} outline found: box at ({{x0}}, {{y0}}, {{x1}}, {{y1}}), {{x1 - x0 + 1}}x{{y1 - y0 + 1}} px in a {{input_image.width}}x{{input_image.height}} image")
"""

ZOOM_CODE = """from PIL import Image

pad = 6
crop = input_image.crop((x0 - pad, y0 - pad, x1 + pad + 1, y1 + pad + 1))
zoom = crop.resize((crop.width * 4, crop.height * 4), Image.LANCZOS)
print("zoomed crop:", zoom.size)
display(zoom)
"""

RING_COLOUR_CODE = """import numpy as np
import cv2

img = np.asarray(input_image.convert("RGB"))
ring = cv2.inRange(img, np.array([235, 0, 0], np.uint8), np.array([255, 20, 20], np.uint8))
m = cv2.moments(ring, binaryImage=True)
cx, cy = int(round(m["m10"] / m["m00"])), int(round(m["m01"] / m["m00"]))
inner = img[cy - 2:cy + 3, cx - 2:cx + 3].reshape(-1, 3).astype(int)
palette = {palette}
rgb = np.median(inner, axis=0)
name = min(palette, key=lambda k: float(np.abs(rgb - np.array(palette[k])).sum()))
letter = "ABCD"[list(palette).index(name)]  # the palette lists the options in order
print(f"ring centre at ({{cx}}, {{cy}}); colour inside ~ {{rgb.astype(int).tolist()}} -> {{name}}, option {{letter}}")
"""


class VisualSearchFamily(TaskFamily):
    name = "visual_search"
    description = "Find a tiny marked object or tiny text in a high-resolution image; answer needs a zoom."

    def generate(self, rng: np.random.Generator) -> ProceduralItem:
        level = int(rng.integers(1, 4))
        side, font_size = LEVELS[level]
        image = _busy_background(rng, side)
        if rng.random() < 0.5:
            return self._text_item(rng, image, level, font_size)
        return self._colour_item(rng, image, level)

    def _text_item(self, rng: np.random.Generator, image: Image.Image, level: int, font_size: int) -> ProceduralItem:
        draw = ImageDraw.Draw(image)
        fnt = font(font_size)
        names = list(rng.permutation(list(OUTLINES)))[: int(rng.integers(2, 5))]
        boxes: list[tuple[int, int, int, int]] = []
        codes: dict[str, str] = {}
        side = image.width
        for name in names:
            code = "".join(rng.choice(list(CODE_ALPHABET), size=4))
            left, top, right, bottom = draw.textbbox((0, 0), code, font=fnt)
            w, h = right - left + 8, bottom - top + 8
            for _ in range(200):
                x, y = int(rng.integers(40, side - w - 40)), int(rng.integers(40, side - h - 40))
                if not any(x < bx1 + 40 and bx0 < x + w + 40 and y < by1 + 40 and by0 < y + h + 40 for bx0, by0, bx1, by1 in boxes):
                    break
            draw.rectangle([x, y, x + w, y + h], fill=(255, 255, 255), outline=OUTLINES[name], width=2)
            draw.text((x + 4 - left, y + 4 - top), code, fill=(20, 20, 20), font=fnt)
            boxes.append((x, y, x + w, y + h))
            codes[name] = code
        target = str(names[int(rng.integers(0, len(names)))])
        box = boxes[names.index(target)]
        return ProceduralItem(
            family=self.name,
            variant="text",
            images=[image],
            question=f"Somewhere in this large image there is a small box with a {target} outline. "
            "What is the 4-character code written inside it? Answer with the code only.",
            ground_truth=codes[target],
            answer_type="text",
            steps=[
                SolutionStep(
                    thought=f"The image is {side}x{side} and the text must be tiny; I will first locate the {target} outline by its colour.",
                    code=FIND_BOX_CODE.format(rgb=list(OUTLINES[target]), colour=target),
                ),
                SolutionStep(
                    thought="The box is only a few dozen pixels wide; I will crop it with a small margin and enlarge it 4x to read the code.",
                    code=ZOOM_CODE,
                ),
            ],
            final_thought="The enlarged crop of the box clearly shows the code {answer}, so the answer is {answer}.",
            params={"level": level, "canvas": side, "font_size": font_size, "num_boxes": len(names),
                    "target": target, "box": list(box)},
        )

    def _colour_item(self, rng: np.random.Generator, image: Image.Image, level: int) -> ProceduralItem:
        draw = ImageDraw.Draw(image)
        side = image.width
        square = 10 - level  # 9, 8, 7 px
        colours = [name for name in PALETTE if name != "red"]
        occupied: list[tuple[int, int]] = []
        for _ in range(40 * level):  # distractor squares of every colour
            x, y = int(rng.integers(30, side - 30)), int(rng.integers(30, side - 30))
            draw.rectangle([x, y, x + square - 1, y + square - 1], fill=PALETTE[str(rng.choice(colours))])
            occupied.append((x, y))
        answer_colour = str(rng.choice(colours))
        for _ in range(500):
            cx, cy = int(rng.integers(60, side - 60)), int(rng.integers(60, side - 60))
            if all(abs(cx - x) > 40 or abs(cy - y) > 40 for x, y in occupied):
                break
        half = square // 2
        draw.rectangle([cx - half, cy - half, cx - half + square - 1, cy - half + square - 1], fill=PALETTE[answer_colour])
        radius = 16
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], outline=RING_RGB, width=2)
        options = [answer_colour] + list(rng.choice([c for c in colours if c != answer_colour], size=3, replace=False))
        options = [str(o) for o in rng.permutation(options)]
        letter = "ABCD"[options.index(answer_colour)]
        palette = {name: list(PALETTE[name]) for name in options}
        return ProceduralItem(
            family=self.name,
            variant="colour",
            images=[image],
            question="A thin red ring marks one tiny square in this large image. What colour is that square? "
            "Answer with the letter of the option.",
            ground_truth=letter,
            answer_type="choice",
            choices=options,
            steps=[
                SolutionStep(
                    thought=f"The marked square is only {square} px wide in a {side}x{side} image, too small to judge at reduced "
                    "resolution; I will find the red ring and read the pixels at its centre.",
                    code=RING_COLOUR_CODE.format(palette=palette),
                )
            ],
            final_thought="The code printed -> {colour}, option {answer}: the pixels inside the ring are {colour}, so the answer is {answer}.",
            params={"level": level, "canvas": side, "square_px": square, "centre": [cx, cy], "colour": answer_colour},
        )

    def read_answer(self, item: ProceduralItem, observations: list[Observation]) -> str | None:
        if item.variant == "text":
            found = re.search(r"box at \((\d+), (\d+), (\d+), (\d+)\)", observations[0].stdout if observations else "")
            if found is None or len(observations) < 2 or not observations[1].images:
                return None
            if [int(v) for v in found.groups()] != item.params["box"]:
                return None
            return item.ground_truth  # read off the zoomed crop the code displayed, located where it was drawn
        found = re.search(r"-> (\w+), option ([A-D])\s*$", observations[-1].stdout if observations else "")
        if found is None or item.choices is None or found.group(1) not in item.choices:
            return None
        letter = "ABCD"[item.choices.index(found.group(1))]
        return letter if found.group(2) == letter else None  # the printed letter must name the printed colour


def _busy_background(rng: np.random.Generator, side: int) -> Image.Image:
    """A soft gradient with muted clutter: busy enough to hide the target, still compressible as PNG."""
    ramp = np.linspace(0, 1, side, dtype=np.float32)
    base = np.array([200, 210, 215], np.float32) + 30 * ramp[:, None, None] * np.array([1, -0.5, -1], np.float32)
    canvas = np.broadcast_to(base, (side, side, 3)).astype(np.uint8)
    image = Image.fromarray(np.ascontiguousarray(canvas))
    draw = ImageDraw.Draw(image)
    for _ in range(int(side / 20)):
        x, y = int(rng.integers(0, side)), int(rng.integers(0, side))
        w, h = int(rng.integers(20, 160)), int(rng.integers(20, 160))
        shade = tuple(int(v) for v in rng.integers(120, 190, size=3))
        if rng.random() < 0.5:
            draw.rectangle([x, y, x + w, y + h], outline=shade, width=2)
        else:
            draw.line([x, y, x + w, y + h], fill=shade, width=2)
    return image
