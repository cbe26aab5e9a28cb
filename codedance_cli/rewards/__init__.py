"""Rewards: answer matching and the balanced adaptive tool-call reward of CodeDance.

- `matching.answers_match`: rule matching (choice letters, numbers with tolerance/units/percent, short text),
  shared by filter, eval and RL.
- `format.check_format`: the format penalty; `tool_call`: the sequence-level difficulty-aware tool incentive
  and the turn-level failed-call penalty with its discounted per-turn return.
- `score.score_rollout`: accuracy (rules, math_verify, the LLM judge) + format + tool terms, coefficients from
  `RewardConfig`; `verl_reward` and `swift_reward` adapt it to verl's and ms-swift's reward interfaces.
"""
