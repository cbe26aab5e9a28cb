"""Rewards: answer matching and the balanced adaptive tool-call reward of CodeDance (docs/reward.md).

The one public entry is `score_batch` (async) / `score_batch_sync`: a GRPO batch of
`RolloutForReward`s (with their group ids, item metadata and rendered tool
responses) in, one `RolloutReward` per rollout out: the outcome score R*a + w*f,
the sequence-level tool term R_seq, the score GRPO normalises, and the per-turn
advantage offsets of R_turn. verl's plug-ins (`verl_reward`) and ms-swift's
(`swift_reward`) both call it.

- `matching`: rule matching (choice letters, numbers at the reference's precision, short text).
- `format`: the format penalty and the graded answer, per path (general, math).
- `tool_call`: T, decay(mu), the discounted per-turn returns and their batch normalisation.
"""

from codedance_cli.rewards.score import RolloutForReward, RolloutReward, score_batch, score_batch_sync

__all__ = ["RolloutForReward", "RolloutReward", "score_batch", "score_batch_sync"]
