"""ms-swift plugin file (`swift rlhf --external_plugins <this file>`): registers CodeDance's reward, scheduler and trainer.

    --reward_funcs codedance_reward           the balanced adaptive tool-call reward (codedance_cli/engines/swift/reward.py)
    --multi_turn_scheduler codedance_sandbox  code cells run in our sandbox (codedance_cli/engines/swift/scheduler.py)
    rlhf_type grpo -> CodeDanceGRPOTrainer    per-turn advantage offsets (codedance_cli/engines/swift/trainer.py)
    --model_type/--template codedance_qwen2_5_vl  Qwen2.5-VL without torchvision, for CPU machines (swift_qwen_pil.py)
    a frozen vision tower gets no backward pass         (codedance_cli/engines/swift/frozen_vit.py)
    swift.vit_attention varlen: one ViT attention call a block  (codedance_cli/engines/swift/vit_varlen.py)
    float32 master weights: the ViT under the LLM's autocast    (codedance_cli/engines/swift/vit_autocast.py)

ms-swift imports this file by path while it parses arguments, before it builds the trainer from
`TrainerFactory.TRAINER_MAPPING`; the package itself must be importable (it is installed in the venv).
"""

from swift.rewards import orms
from swift.rollout.multi_turn import multi_turns
from swift.trainers.trainer_factory import TrainerFactory

from codedance_cli.engines.swift import frozen_vit, qwen_pil, vit_autocast, vit_varlen
from codedance_cli.engines.swift.reward import CodeDanceReward
from codedance_cli.engines.swift.grpo_command import REWARD_NAME, SCHEDULER_NAME
from codedance_cli.engines.swift.scheduler import CodeDanceSandboxScheduler

TRAINER_CLASS = "codedance_cli.engines.swift.trainer.CodeDanceGRPOTrainer"

orms[REWARD_NAME] = CodeDanceReward
multi_turns[SCHEDULER_NAME] = CodeDanceSandboxScheduler
TrainerFactory.TRAINER_MAPPING["grpo"] = TRAINER_CLASS
qwen_pil.register()
frozen_vit.install()  # a frozen ViT gets no backward pass (frozen_vit.py)
vit_varlen.install_if_asked()  # swift.vit_attention: varlen
vit_autocast.install_if_asked()  # train.master_weights float32: the ViT under the LLM's autocast
