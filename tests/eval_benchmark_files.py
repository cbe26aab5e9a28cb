"""Tiny benchmark files in each public format, generated at test time (no binaries in the repo).

Each writer returns the path to put in a recipe plus the expected (task id -> ground truth), and
every item has a real image that shows its answer, so a scripted model turn can crop and print it.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw


def picture(text: str, size: tuple[int, int] = (96, 64), fmt: str = "PNG", colour: str = "white") -> bytes:
    """A small real image with `text` drawn on it."""
    image = Image.new("RGB", size, colour)
    draw = ImageDraw.Draw(image)
    draw.rectangle([4, 4, size[0] - 5, size[1] - 5], outline="black")
    draw.text((10, size[1] // 2 - 6), text, fill="black")
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def write_vstar_folder(root: Path) -> Path:
    """Official layout: category folders with NAME.jpg + NAME.json (correct option first)."""
    items = {
        "direct_attributes": [("sa_1", "What is the color of the cup?", ["red", "blue", "green", "white"])],
        "relative_position": [("sa_2", "Is the dog on the left or right side of the cat?", ["left", "right"])],
    }
    for category, rows in items.items():
        (root / category).mkdir(parents=True, exist_ok=True)
        for stem, question, options in rows:
            (root / category / f"{stem}.jpg").write_bytes(picture(options[0], fmt="JPEG"))
            annotation = {"target_object": ["cup"], "bbox": [[1, 2, 3, 4]], "question": question, "options": options}
            (root / category / f"{stem}.json").write_text(json.dumps(annotation))
    return root


def write_vstar_jsonl(root: Path) -> Path:
    """Flattened layout: test_questions.jsonl with inline options and a label letter."""
    (root / "direct_attributes").mkdir(parents=True, exist_ok=True)
    (root / "direct_attributes" / "sa_9.jpg").write_bytes(picture("blue", fmt="JPEG"))
    row = {
        "image": "direct_attributes/sa_9.jpg",
        "text": "What is the color of the umbrella?\n(A) red\n(B) blue\n(C) black\n(D) yellow\nAnswer with the option's letter from the given choices directly.",
        "category": "direct_attributes",
        "question_id": 0,
        "label": "B",
    }
    (root / "test_questions.jsonl").write_text(json.dumps(row) + "\n")
    return root


HRBENCH_ROWS = [
    # index, question, answer, category, A, B, C, D, cycle_category
    (0, "What is written on the sign?", "C", "single", "stop", "go", "exit", "wait", "0"),
    (1, "What is written on the sign?", "B", "single", "go", "exit", "wait", "stop", "0"),
    (2, "Which is larger, the car or the bus?", "A", "cross", "bus", "car", "same", "neither", "1"),
]


def hrbench_rows() -> list[dict]:
    rows = []
    for index, question, answer, category, a, b, c, d, cycle in HRBENCH_ROWS:
        truth = {"A": a, "B": b, "C": c, "D": d}[answer]
        image = base64.b64encode(picture(truth, size=(160, 120))).decode("ascii")
        rows.append(
            {
                "index": index,
                "question": question,
                "answer": answer,
                "category": category,
                "A": a,
                "B": b,
                "C": c,
                "D": d,
                "image": image,
                "cycle_category": cycle,
            }
        )
    return rows


def write_hrbench(root: Path, resolution: str = "4k", fmt: str = "tsv") -> Path:
    """hr_bench_{4k,8k}.tsv (or .parquet): base64 images, options A-D, answer letter."""
    root.mkdir(parents=True, exist_ok=True)
    rows = hrbench_rows()
    path = root / f"hr_bench_{resolution}.{fmt}"
    if fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        columns = list(rows[0])
        lines = ["\t".join(columns)] + ["\t".join(str(row[c]) for c in columns) for row in rows]
        path.write_text("\n".join(lines) + "\n")
    return path


MATHVISTA_ITEMS = {
    "1": {
        "question": "What is the length of the bar?",
        "choices": None,
        "unit": "cm",
        "precision": 1,
        "answer": "1.2",
        "question_type": "free_form",
        "answer_type": "float",
        "task": "figure question answering",
    },
    "2": {
        "question": "How many objects are left?",
        "choices": None,
        "unit": None,
        "precision": None,
        "answer": "4",
        "question_type": "free_form",
        "answer_type": "integer",
        "task": "math word problem",
    },
    "3": {
        "question": "Find the angle BOC.",
        "choices": ["135°", "140°", "145°", "150°"],
        "unit": None,
        "precision": None,
        "answer": "145°",
        "question_type": "multi_choice",
        "answer_type": "text",
        "task": "geometry problem solving",
    },
}


def _mathvista_record(pid: str, item: dict, image: str | dict) -> dict:
    metadata = {
        "split": "testmini",
        "language": "english",
        "img_width": 96,
        "img_height": 64,
        "source": "test",
        "category": "math-targeted-vqa",
        "task": item["task"],
        "context": "synthetic",
        "grade": "high school",
        "skills": ["arithmetic reasoning"],
    }
    record = {k: v for k, v in item.items() if k != "task"}
    return {**record, "pid": pid, "image": image, "metadata": metadata}


def write_mathvista(root: Path, fmt: str = "json") -> Path:
    """GitHub release layout (testmini.json + images/) or the hub parquet (decoded_image + query)."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    if fmt == "json":
        data = {}
        for pid, item in MATHVISTA_ITEMS.items():
            (root / "images" / f"{pid}.jpg").write_bytes(picture(item["answer"], fmt="JPEG"))
            data[pid] = _mathvista_record(pid, item, f"images/{pid}.jpg")
        (root / "testmini.json").write_text(json.dumps(data, ensure_ascii=False))
        return root
    rows = []
    for pid, item in MATHVISTA_ITEMS.items():
        row = _mathvista_record(pid, item, f"images/{pid}.jpg")
        row["decoded_image"] = {"bytes": picture(item["answer"]), "path": f"{pid}.png"}
        row["query"] = "Hint: official hint\nQuestion: " + item["question"]
        rows.append(row)
    (root / "data").mkdir(exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), root / "data" / "testmini-00000-of-00001.parquet")
    return root


CHARTQA_ITEMS = {
    "human": [("c1.png", "What is the value of the tallest bar?", "42"), ("c2.png", "Which country has the lowest share?", "Chile")],
    "augmented": [("c3.png", "What is the sum of the two bars?", "12.5")],
}


def write_chartqa(root: Path) -> Path:
    """ChartQA test folder: test_human.json, test_augmented.json, png/."""
    (root / "png").mkdir(parents=True, exist_ok=True)
    for split, rows in CHARTQA_ITEMS.items():
        for name, _, label in rows:
            (root / "png" / name).write_bytes(picture(label))
        (root / f"test_{split}.json").write_text(
            json.dumps([{"imgname": name, "query": query, "label": label} for name, query, label in rows])
        )
    return root


def write_counting(root: Path, style: str = "countbenchqa") -> Path:
    """CountBenchQA-style jsonl (image path, question, number) or PixMo-Count-style (label, count)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(exist_ok=True)
    rows = []
    for index, (label, count) in enumerate([("apples", 3), ("birds", 7)]):
        name = f"images/{index}.png"
        (root / name).write_bytes(picture(f"{count} {label}"))
        if style == "pixmo":
            rows.append({"image": name, "label": label, "count": count})
        else:
            rows.append({"image": name, "question": f"How many {label} are in the image?", "number": count, "text": f"{count} {label}"})
    path = root / "test.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path
