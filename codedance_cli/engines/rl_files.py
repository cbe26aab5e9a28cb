"""The files a `codedance rl` run writes under its output_dir, named in one place."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class RunFiles:
    """Generated inputs, engine configs and checkpoints of one run (all under `root`)."""

    root: Path
    train: Path = field(init=False)
    val: Path = field(init=False)
    swift_train: Path = field(init=False)
    swift_images: Path = field(init=False)
    reward_config: Path = field(init=False)
    reward_log: Path = field(init=False)
    tool_config: Path = field(init=False)
    settings: Path = field(init=False)
    checkpoints: Path = field(init=False)
    verl_metrics: Path = field(init=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        self.train = self.root / "data" / "train.parquet"
        self.val = self.root / "data" / "val.parquet"
        self.swift_train = self.root / "data" / "train.jsonl"
        self.swift_images = self.root / "data" / "images"
        self.reward_config = self.root / "reward.json"
        self.reward_log = self.root / "rewards.jsonl"
        self.tool_config = self.root / "verl_tool_config.yaml"
        self.settings = self.root / "rl_settings.json"
        self.checkpoints = self.root / "checkpoints"
        self.verl_metrics = self.root / "verl_metrics.jsonl"  # verl's file logger: one JSON line a step
