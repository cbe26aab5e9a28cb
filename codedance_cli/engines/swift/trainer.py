"""ms-swift's GRPO trainer with the balanced adaptive tool-call reward's per-turn advantages (R_turn).

ms-swift has no plug-in point for per-token advantages, but it builds its trainer
from a class path looked up by `rlhf_type` at launch (`TrainerFactory.TRAINER_MAPPING`),
after importing `--external_plugins`; our plug-in file points `grpo` at this
subclass. It keeps ms-swift's group-normalised advantage and, after it has been
spread over each completion's tokens, adds each assistant turn's offset (left in
the sample's `rollout_infos` by our reward function) to that turn's tokens.

A completion's trained tokens are its assistant turns, in order, joined; the
sample's `response_loss_mask` gives each turn's count. When truncation cut the
front of a completion, the turns are lined up from the end. Loss settings that
average advantages per sequence (`use_liger_kernel`, `loss_type='real'`) undo this.

It also logs where a step's seconds go, into ms-swift's logging.jsonl: `codedance/rollout_s` (generation with the
tool calls), `codedance/sandbox_call_s` (the sandbox calls in it, summed over calls, so concurrent calls can add up
to more than their wall time) and `codedance/reward_s`; the rest of `train_speed(s/it)` is the update. With
`--dynamic_sample` ms-swift generates again from inside its scoring, to replace groups whose rewards are all equal:
those generations count as rollout (and `codedance/generations` says how many batches a step generated), so that
reward_s stays the reward's own time.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch
from swift.rlhf_trainers import GRPOTrainer

from codedance_cli.rewards.rollout_fields import TURN_OFFSETS_FIELD


def add_turn_offsets(advantages: torch.Tensor, completion_mask: torch.Tensor, turn_lengths: Sequence[int], offsets: Sequence[float]) -> int:
    """Add offsets[k] to the advantages of assistant turn k of one row, in place; returns the tokens touched.

    `completion_mask` marks the row's trained tokens; turn k owns `turn_lengths[k]` of them, counted from the
    end when the row holds fewer than all turns (the front was truncated).
    """
    positions = completion_mask.nonzero(as_tuple=True)[0]
    end, touched = len(positions), 0
    for length, offset in reversed(list(zip(turn_lengths, offsets))):
        start = max(0, end - int(length))
        if offset and end > start:
            advantages[positions[start:end]] += float(offset)
            touched += end - start
        end = start
        if end == 0:
            break
    return touched


class CodeDanceGRPOTrainer(GRPOTrainer):
    """GRPOTrainer + per-turn advantage offsets (see the module docstring)."""

    def _step_metrics(self) -> Any:
        """ms-swift's per-step metric lists (averaged into logging.jsonl) of the current mode."""
        return self._metrics["train" if self.model.training else "eval"]

    _generation_s = 0.0  # this step's generation seconds so far (first batch and any dynamic-sampling batches)
    _generations = 0

    def _sandbox_scheduler(self) -> Any:
        """Our scheduler, which counts its sandbox seconds (None for another scheduler or none)."""
        scheduler = getattr(self, "multi_turn_scheduler", None)
        return scheduler if hasattr(scheduler, "sandbox_call_s") else None

    def _generate_completions(self, samples: Any) -> Any:
        """ms-swift's generation (multi-turn, tool calls included), timed, wherever ms-swift calls it from."""
        started = time.perf_counter()
        generated = super()._generate_completions(samples)
        self._generation_s += time.perf_counter() - started
        self._generations += 1
        return generated

    def _rollout_samples(self, inputs: Any) -> Any:
        """A step's first generation: the step's counters start here."""
        self._generation_s, self._generations = 0.0, 0
        if (scheduler := self._sandbox_scheduler()) is not None:
            scheduler.sandbox_call_s = 0.0
        return super()._rollout_samples(inputs)

    def _score_completions(self, samples: list[Any]) -> list[Any]:
        """The reward (and ms-swift's dynamic resampling, whose generations are taken out of the reward's time)."""
        started, generated_before = time.perf_counter(), self._generation_s
        scored = super()._score_completions(samples)
        metrics = self._step_metrics()
        metrics["codedance/reward_s"].append(time.perf_counter() - started - (self._generation_s - generated_before))
        metrics["codedance/rollout_s"].append(self._generation_s)
        metrics["codedance/generations"].append(float(self._generations))
        if (scheduler := self._sandbox_scheduler()) is not None:
            metrics["codedance/sandbox_call_s"].append(scheduler.sandbox_call_s)
        return scored

    def _postprocess_batch(self, samples: list[Any], batch_encoded_inputs: list[dict[str, Any]]) -> None:
        super()._postprocess_batch(samples, batch_encoded_inputs)
        touched = 0
        for chunk, encoded in zip(self.split_by_mini_batches(samples), batch_encoded_inputs, strict=True):
            batch = encoded["grpo_batch"]
            for row, sample in enumerate(chunk):
                offsets = (sample.rollout_infos or {}).get(TURN_OFFSETS_FIELD)
                if not offsets:
                    continue
                lengths = [sum(mask) for mask in sample.response_loss_mask] or [int(batch.completion_mask[row].sum())]
                touched += add_turn_offsets(batch.advantages[row], batch.completion_mask[row], lengths, offsets)
        self._step_metrics()["codedance/turn_offset_tokens"].append(float(touched))
