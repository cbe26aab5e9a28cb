"""ms-swift plugin file (`swift rlhf --external_plugins <this file>`): registers CodeDance's reward and scheduler.

    --reward_funcs codedance_reward           the balanced adaptive tool-call reward (codedance_cli/rewards/swift_reward.py)
    --multi_turn_scheduler codedance_sandbox  code cells run in our sandbox (codedance_cli/rl/swift_scheduler.py)
    --model_type/--template codedance_qwen2_5_vl  Qwen2.5-VL without torchvision, for CPU machines (swift_qwen_pil.py)

ms-swift imports this file by path; the package itself must be importable (it is installed in the venv).
"""

from swift.rewards import orms
from swift.rollout.multi_turn import multi_turns

from codedance_cli.rewards.swift_reward import CodeDanceReward
from codedance_cli.engines import swift_qwen_pil
from codedance_cli.rl.swift_engine import REWARD_NAME, SCHEDULER_NAME
from codedance_cli.rl.swift_scheduler import CodeDanceSandboxScheduler

orms[REWARD_NAME] = CodeDanceReward
multi_turns[SCHEDULER_NAME] = CodeDanceSandboxScheduler
swift_qwen_pil.register()
