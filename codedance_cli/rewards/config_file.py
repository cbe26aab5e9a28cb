"""The reward coefficients an engine's plug-ins read: `codedance rl` writes them to reward.json and names it in the env."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

from codedance_cli.recipes.rl import RewardConfig

REWARD_CONFIG_ENV = "CODEDANCE_REWARD_CONFIG"


@lru_cache(maxsize=8)
def load_reward_config(path: str | None) -> RewardConfig:
    """RewardConfig from a JSON file (the argument, else env CODEDANCE_REWARD_CONFIG), else the defaults."""
    path = path or os.environ.get(REWARD_CONFIG_ENV)
    if not path:
        return RewardConfig()
    return RewardConfig.model_validate(json.loads(Path(path).read_text()))
