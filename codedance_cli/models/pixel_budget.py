"""The per-image pixel budget a checkpoint was trained at, as saved with its image processor.

A Qwen2-VL-family model sees an image as (pixels / 28**2) tokens, so a budget other than the one it was trained
with changes both what each visual token covers and how many there are. A small fine-tuned model does not
generalise across that: a nano SFT model trained at 50176 pixels (<= 64 visual tokens) and evaluated at 200704
(<= 256) writes a soup of its training text with no code block. `codedance sft` records the budget it trained at
in the checkpoint's processor config; eval and infer default to it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PIXELS_PER_TOKEN = 28 * 28


def processor_config(path: str | Path) -> dict[str, Any]:
    """The image processor's saved settings: `processor_config.json`'s image_processor, else `preprocessor_config.json`."""
    folder = Path(path)
    combined, legacy = folder / "processor_config.json", folder / "preprocessor_config.json"
    try:
        if combined.is_file() and isinstance(image := json.loads(combined.read_text()).get("image_processor"), dict):
            return image
        if legacy.is_file():
            return json.loads(legacy.read_text())
    except (OSError, ValueError):
        pass
    return {}


def saved_max_pixels(path: str | Path) -> int | None:
    """The per-image pixel budget saved with a checkpoint's image processor (its default), or None if not recorded."""
    config = processor_config(path)
    size = config.get("size") if isinstance(config.get("size"), dict) else {}
    value = size.get("longest_edge", size.get("max_pixels", config.get("max_pixels")))
    return int(value) if isinstance(value, int | float) else None


def check_pixel_budget(path: str | Path, max_pixels: int | None) -> str | None:
    """A warning when `max_pixels` exceeds the checkpoint's saved budget (None when within it or either is unknown).

    Only a larger budget is flagged: a smaller one is the everyday case of a recipe capping a released model's
    generous default (Qwen2.5-VL saves 12845056).
    """
    saved = saved_max_pixels(path)
    if max_pixels is None or saved is None or max_pixels <= saved:
        return None
    return (f"model.max_pixels={max_pixels} exceeds the pixel budget saved with {str(path)!r} ({saved}): images become "
            f"up to {max_pixels // PIXELS_PER_TOKEN} visual tokens instead of {saved // PIXELS_PER_TOKEN}. A fine-tuned "
            "model must be evaluated with the budget its training actually used; a mismatch can turn its output into gibberish.")


def record_pixel_budget(config_file: Path, budget: tuple[int, int]) -> None:
    """Save the (min, max) budget training used as the checkpoint's image processor default."""
    if not config_file.is_file():
        return
    data = json.loads(config_file.read_text())
    size = data.get("image_processor", {}).get("size")
    if isinstance(size, dict):
        size.update(shortest_edge=budget[0], longest_edge=budget[1])
    config_file.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
