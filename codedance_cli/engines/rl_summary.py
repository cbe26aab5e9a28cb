"""What a GRPO run did, step by step: did the policy get a learning signal at all? (both engines)

GRPO learns only from groups whose rewards differ. A run where every group's rewards were equal at every step,
or whose gradients were all zero, trained nothing however long it ran; `codedance rl` says so instead of reporting a
checkpoint as if it had learned. Each engine reads its own log into this summary, written to `rl_summary.json`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from codedance_cli.common.atomic import atomic_write_text


@dataclass
class RlSummary:
    steps: int
    first_reward: float
    first_reward_std: float
    last_reward: float
    last_reward_std: float
    mean_frac_reward_zero_std: float
    max_grad_norm: float

    @property
    def trained(self) -> bool:
        """Some step had a group with differing rewards and a non-zero gradient."""
        return self.steps > 0 and self.mean_frac_reward_zero_std < 1.0 and self.max_grad_norm > 0.0

    def lines(self) -> list[str]:
        verdict = "the policy got a learning signal" if self.trained else "NO LEARNING SIGNAL: every group's rewards were equal or every gradient was zero"
        return [
            f"GRPO steps: {self.steps}",
            f"reward mean/std: first step {self.first_reward:.3f} / {self.first_reward_std:.3f}, "
            f"last step {self.last_reward:.3f} / {self.last_reward_std:.3f}",
            f"groups with equal rewards (mean over steps): {100 * self.mean_frac_reward_zero_std:.0f} %; max grad norm {self.max_grad_norm:.4g}",
            verdict,
        ]


def write_summary(summary: RlSummary, path: Path) -> None:
    atomic_write_text(path, json.dumps({**asdict(summary), "trained": summary.trained}, indent=2))
