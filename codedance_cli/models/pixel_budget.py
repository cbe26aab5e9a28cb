"""The per-image pixel budget a checkpoint was trained at, as saved with its image processor.

A Qwen2-VL-family model sees an image as (pixels / 28**2) tokens, so a budget other than the one it was trained
with changes both what each visual token covers and how many there are. A small fine-tuned model does not
generalise across that: a nano SFT model trained at 50176 pixels (<= 64 visual tokens) and evaluated at 200704
(<= 256) writes a soup of its training text with no code block. `codedance sft` records the budget it trained at
in the checkpoint's processor config; eval and infer default to it.

A released model's saved budget is a generous default (Qwen2.5-VL: 12845056) that recipes routinely cap, so only a
larger budget is suspicious there. A checkpoint our training wrote also names the budget in `TRAINED_BUDGET_FILE`:
that one is exact, and a budget either side of it is a mismatch. It matters most in RL, where the policy is updated
on what it saw: a GRPO run at 64 visual tokens an image from an SFT model trained at 256 starts at format failures
(every rollout at the -0.2 penalty) and can only drift.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from codedance_cli.common.atomic import atomic_write_text

PIXELS_PER_TOKEN = 28 * 28
TRAINED_BUDGET_FILE = "codedance_pixel_budget.json"  # {"min_pixels": .., "max_pixels": ..}: what training used
EVAL_ADVICE = ("A fine-tuned model must be evaluated with the budget its training actually used; a mismatch can turn its "
               "output into gibberish.")


def _visual_tokens(max_pixels: int, reference: int) -> str:
    """What a budget other than `reference` does to each image, in visual tokens."""
    return f"images become up to {max_pixels // PIXELS_PER_TOKEN} visual tokens instead of {reference // PIXELS_PER_TOKEN}"


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


def trained_max_pixels(path: str | Path) -> int | None:
    """The per-image budget a checkpoint was trained at by codedance (sft or rl), or None for any other checkpoint."""
    try:
        value = json.loads((Path(path) / TRAINED_BUDGET_FILE).read_text()).get("max_pixels")
    except (OSError, ValueError, AttributeError):
        return None
    return int(value) if isinstance(value, int | float) else None


def trained_budget_mismatch(path: str | Path, max_pixels: int | None) -> str | None:
    """Why `max_pixels` is not the budget the checkpoint was trained at (None when equal, unset or not recorded)."""
    trained = trained_max_pixels(path)
    if max_pixels is None or trained is None or max_pixels == trained:
        return None
    return (f"model.max_pixels={max_pixels} differs from the budget {str(path)!r} was trained at ({trained}, recorded in "
            f"{TRAINED_BUDGET_FILE}): {_visual_tokens(max_pixels, trained)}")


def check_pixel_budget(path: str | Path, max_pixels: int | None) -> str | None:
    """A warning when `max_pixels` is not what the checkpoint expects (None when it is or either is unknown).

    With a recorded training budget any difference is flagged; otherwise only a budget above the saved one, since a
    smaller one is the everyday case of a recipe capping a released model's generous default.
    """
    if (mismatch := trained_budget_mismatch(path, max_pixels)) is not None:
        return f"{mismatch}. {EVAL_ADVICE}"
    saved = saved_max_pixels(path)
    if max_pixels is None or saved is None or max_pixels <= saved:
        return None
    return (f"model.max_pixels={max_pixels} exceeds the pixel budget saved with {str(path)!r} ({saved}): "
            f"{_visual_tokens(max_pixels, saved)}. {EVAL_ADVICE}")


def record_pixel_budget(config_file: Path, budget: tuple[int, int]) -> None:
    """Save the (min, max) budget training used as the checkpoint's image processor default, and in its own file."""
    if not config_file.is_file():
        return
    trained = {"min_pixels": budget[0], "max_pixels": budget[1]}
    atomic_write_text(config_file.with_name(TRAINED_BUDGET_FILE), json.dumps(trained) + "\n")
    data = json.loads(config_file.read_text())
    size = data.get("image_processor", {}).get("size")
    if isinstance(size, dict):
        size.update(shortest_edge=budget[0], longest_edge=budget[1])
    atomic_write_text(config_file, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
