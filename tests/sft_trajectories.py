"""Small trajectories for the SFT tests: procedural images and questions, code turns with real observations.

The observations come from running the turn's code for real (in-process, on our own fixed snippets),
so the exported text, images and errors are what a sandbox would report for them.
"""

from __future__ import annotations

import contextlib
import io
import traceback

from PIL import Image

from codedance_cli.procedural.registry import make_tasks
from codedance_cli.procedural.solve import answer_turn_text, code_turn_text
from codedance_cli.trajectory.schema import Observation, Trajectory, Turn, decode_image, encode_image

CROP_CODE = "crop = input_image.crop((0, 0, input_image.width // 2, input_image.height // 2))\nprint('crop', crop.size)"
FAILING_CODE = "print(undefined_name)"


def run_cell(code: str, image: Image.Image) -> Observation:
    """Execute `code` with `input_image` bound; stdout, a produced `crop` image, or the error, as an Observation."""
    scope: dict[str, object] = {"input_image": image}
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(code, "<cell>", "exec"), scope)  # our own fixed snippets, not model output
    except Exception as exc:
        return Observation(stdout=out.getvalue(), error_type=type(exc).__name__, error=traceback.format_exception_only(exc)[-1].strip())
    images = [encode_image(scope["crop"])] if isinstance(scope.get("crop"), Image.Image) else []
    return Observation(stdout=out.getvalue(), images=images)


def make_trajectories(n: int, prompt_version: str = "codedance-v1", seed: int = 7) -> list[Trajectory]:
    """`n` trajectories: crop-and-print, (every third) a failing cell, then the answer."""
    trajectories = []
    for index, task in enumerate(make_tasks(n, seed=seed)):
        image = decode_image(task.images[0]).convert("RGB")
        turns = [Turn(text=code_turn_text("Zoom into the top left.", CROP_CODE, prompt_version), code=CROP_CODE,
                      observation=run_cell(CROP_CODE, image))]
        if index % 3 == 0:
            turns.append(Turn(text=code_turn_text("Check a name.", FAILING_CODE, prompt_version), code=FAILING_CODE,
                              observation=run_cell(FAILING_CODE, image)))
        answer = task.ground_truth or "0"
        turns.append(Turn(text=answer_turn_text("The crop shows it.", answer)))
        trajectories.append(task.model_copy(update={
            "turns": turns, "final_answer": answer, "stop_reason": "answer", "prompt_version": prompt_version,
            "metadata": {**task.metadata, "correct": index % 2 == 0},
        }))
    return trajectories
