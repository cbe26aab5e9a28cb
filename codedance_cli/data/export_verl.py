"""Trajectory-format items -> verl RL parquet (what `verl.utils.dataset.rl_dataset.RLHFDataset` reads).

One row per item, columns as verl's multimodal recipes lay them out:

- `data_source`: the item's source (metadata.source), used by verl to group metrics and by our reward to
  pick the math weights;
- `prompt`: chat messages, the tool-call system prompt (the format the SFT model was trained on) and a
  user turn with one `<image>` placeholder per input image before the question;
- `images`: `[{"bytes": ...}]`, consumed in placeholder order;
- `ability`, `reward_model` (`style`, `ground_truth`);
- `extra_info`: `index`, `task_id`, `question`, `answer_type`, `choices`, `metadata` (JSON text: its keys vary
  per item and parquet wants one schema), `tools_kwargs` for the code tool and `need_tools_kwargs`.

Only the task is exported (question, images, reference): RL samples its own turns.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from codedance_cli.common.atomic import AtomicFile
from codedance_cli.errors import BadInput
from codedance_cli.loop.prompts import TOOL_NAME, TOOLCALL_VERSION, system_prompt
from codedance_cli.trajectory.schema import Trajectory, item_source, question_text

DEFAULT_DATA_SOURCE = "codedance"
MATH_ABILITY_MARKERS = ("math", "geometry", "geo3k")


def verl_row(task: Trajectory, index: int, prompt_version: str = TOOLCALL_VERSION) -> dict[str, Any]:
    """The verl RL row of one item."""
    metadata = dict(task.metadata or {})
    data_source = item_source(metadata, DEFAULT_DATA_SOURCE)
    domain = f"{data_source} {metadata.get('domain', '')}".lower()
    ability = "math" if any(marker in domain for marker in MATH_ABILITY_MARKERS) else "visual_reasoning"
    user = "<image>" * len(task.images) + question_text(task)
    return {
        "data_source": data_source,
        "prompt": [{"role": "system", "content": system_prompt(prompt_version)}, {"role": "user", "content": user}],
        "images": [{"bytes": data} for data in task.images],
        "ability": ability,
        "reward_model": {"style": "model" if task.answer_type == "open" else "rule", "ground_truth": task.ground_truth or ""},
        "extra_info": {
            "index": index,
            "task_id": task.task_id,
            "question": task.question,
            "answer_type": task.answer_type,
            "choices": list(task.choices) if task.choices else None,
            "metadata": json.dumps(metadata, ensure_ascii=False, default=str),
            "tools_kwargs": {TOOL_NAME: {"create_kwargs": {"trajectory_id": task.task_id}}},
            "need_tools_kwargs": True,
        },
    }


def _schema() -> pa.Schema:
    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    tools_kwargs = pa.struct([(TOOL_NAME, pa.struct([("create_kwargs", pa.struct([("trajectory_id", pa.string())]))]))])
    extra_info = pa.struct(
        [
            ("index", pa.int64()),
            ("task_id", pa.string()),
            ("question", pa.string()),
            ("answer_type", pa.string()),
            ("choices", pa.list_(pa.string())),
            ("metadata", pa.string()),
            ("tools_kwargs", tools_kwargs),
            ("need_tools_kwargs", pa.bool_()),
        ]
    )
    return pa.schema(
        [
            ("data_source", pa.string()),
            ("prompt", pa.list_(message)),
            ("images", pa.list_(pa.struct([("bytes", pa.binary())]))),
            ("ability", pa.string()),
            ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
            ("extra_info", extra_info),
        ]
    )


def export_verl(
    trajectories_path: Path | str,
    out_path: Path | str,
    *,
    prompt_version: str = TOOLCALL_VERSION,
    limit: int | None = None,
    require_ground_truth: bool = True,
    require_images: bool = False,
    tasks: Iterable[Trajectory] | None = None,
) -> Path:
    """Write the verl RL parquet for the items at `trajectories_path` to `out_path` (atomically); returns it.

    Items without a ground truth cannot be rewarded and are skipped (unless `require_ground_truth=False`).
    `require_images` skips items without an image, and says how many on stderr: verl's Qwen2.5-VL actor runs its
    vision tower on a dummy input for an image-less micro-batch and fails there under transformers 5.
    """
    from codedance_cli.trajectory.store import iter_trajectories

    source = Path(trajectories_path)
    if tasks is None and not source.exists():
        raise BadInput(f"{source}: no such file or folder of trajectories")
    out = Path(out_path)
    if out.suffix != ".parquet":
        raise BadInput(f"{out}: the verl export is one .parquet file")
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    imageless = 0
    for task in tasks if tasks is not None else iter_trajectories(source):
        if task.task_id in seen or (require_ground_truth and not (task.ground_truth or "").strip()):
            continue
        if require_images and not task.images:
            imageless += 1
            continue
        seen.add(task.task_id)
        rows.append(verl_row(task, len(rows), prompt_version))
        if limit is not None and len(rows) >= limit:
            break
    if imageless:
        print(f"warning: {source}: {imageless} item(s) without an image left out of the verl export", file=sys.stderr, flush=True)
    if not rows:
        raise BadInput(f"{source}: no items with a ground truth{' and an image' if require_images else ''} to export")
    with AtomicFile(out, "wb") as handle:
        pq.write_table(pa.Table.from_pylist(rows, schema=_schema()), handle)
    return out
