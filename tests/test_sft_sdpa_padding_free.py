"""benchmarks/sft_probe.py's SDPA padding-free path: samples sharing a row attend only to themselves.

ms-swift 4.6 runs `--padding_free` / `--packing` only with flash-attn, whose varlen kernel keeps the samples of a
row apart. The GPU machine has no flash-attn, so the throughput benchmark enables the path for SDPA, relying on
transformers building a block-diagonal causal mask from the text position row. Checked here on the tiny model: the
logits of each sample in a padding-free row equal its logits alone; with ms-swift's stock 3-row positions they do
not (the later samples see the earlier ones), which is why ms-swift refuses SDPA.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest

from codedance_cli.data.export_swift import swift_record
from sft_trajectories import make_trajectories

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def probe(monkeypatch):
    """benchmarks/sft_probe.py imported, with every class it patches restored after the test."""
    from swift.arguments.sft_args import SftArguments
    from swift.template.templates.qwen import Qwen2VLTemplate
    from transformers import Trainer

    for owner, name in ((Trainer, "get_batch_samples"), (Qwen2VLTemplate, "_data_collator"),
                        (SftArguments, "_check_padding_free")):
        monkeypatch.setattr(owner, name, getattr(owner, name))
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    sys.modules.pop("sft_probe", None)
    import sft_probe

    yield sft_probe
    sys.modules.pop("sft_probe", None)


def test_padding_free_rows_keep_samples_apart_under_sdpa(tiny_model_dir: Path, tmp_path: Path, monkeypatch, probe) -> None:
    monkeypatch.setenv("MAX_PIXELS", "50176")
    import torch
    from swift import get_model_processor, get_template
    from swift.utils import HfConfigFactory

    from codedance_cli.engines.swift.qwen_pil import NAME, register

    register()
    model, processor = get_model_processor(str(tiny_model_dir), model_type=NAME, attn_impl="sdpa")
    HfConfigFactory.set_config_attr(model.config, "use_cache", False)  # as ms-swift's trainer does
    model.eval()
    template = get_template(processor, template_type=NAME)
    template.set_mode("train")
    template.model = model
    template.register_post_encode_hook([model])  # pixels -> inputs_embeds at forward time, as in training
    alone = [template.encode(swift_record(traj, tmp_path / f"images{i}"), return_length=True)
             for i, traj in enumerate(make_trajectories(3))]

    def logits(batch: dict) -> torch.Tensor:
        with torch.no_grad():
            return model(**{k: v for k, v in batch.items() if k != "labels"}).logits[0]

    def worst_gap(row_logits: torch.Tensor) -> list[float]:
        bounds = [0]
        for single in singles:
            bounds.append(bounds[-1] + single.shape[0])
        return [float((row_logits[a:b] - single).abs().max()) for single, a, b in zip(singles, bounds, bounds[1:])]

    singles = [logits(template.data_collator([copy.deepcopy(encoded)])) for encoded in alone]
    template.padding_free = True
    stock = template.data_collator(copy.deepcopy(alone))
    assert stock["position_ids"].shape[0] == 3
    assert max(worst_gap(logits(stock))[1:]) > 1e-2  # the hazard: later samples attend to earlier ones

    probe.enable_sdpa_padding_free()
    row = template.data_collator(copy.deepcopy(alone))
    assert row["position_ids"].shape[0] == 4  # [text; t; h; w]
    assert max(worst_gap(logits(row))) < 1e-4
    counts = probe.batch_counts(row)  # what the probe records for this micro-batch
    assert counts["lengths"] == [len(encoded["input_ids"]) for encoded in alone]
    assert counts["slots"] == sum(counts["lengths"]) and len(counts["grids"]) == 6


def test_the_sdpa_check_is_relaxed_only_when_asked(probe) -> None:
    from swift.arguments.sft_args import SftArguments

    class Args:
        padding_free, packing, attn_impl = False, True, "sdpa"

    with pytest.raises(ValueError, match="flash attention"):
        SftArguments._check_padding_free(Args())
    probe.enable_sdpa_padding_free()
    args = Args()
    SftArguments._check_padding_free(args)
    assert args.padding_free  # packing implies padding-free, as in ms-swift's own check
