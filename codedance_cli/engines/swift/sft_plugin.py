"""ms-swift plugin file for `swift sft --external_plugins <this file>`: registers `codedance_qwen2_5_vl`.

That model type / template is Qwen2.5-VL with a PIL image processor (no torchvision, which
transformers 5 needs for the stock Qwen2.5-VL processor and which has no CPU build on PyPI) and
with the image/video token ids read from the tokenizer (the stock template hard-codes Qwen's
151655/151656, which the small-vocabulary tiny model does not share). CPU recipes (nano) use it;
GPU recipes with a real Qwen checkpoint use the stock `qwen2_5_vl`.

The registration code lives in the shared engine shims (`codedance_cli/engines/swift/qwen_pil.py`),
which registers the same type for `swift rlhf`; this file only calls it, inside the swift process.

It also gives a frozen vision tower no backward pass (`frozen_vit.py`), and with `train.vit_attention: varlen` runs
the ViT's windows as one attention call a block (`vit_varlen.py`), and with float32 master weights runs the ViT under
the LLM's autocast (`vit_autocast.py`), which is why `codedance sft` passes this file for every model type.
"""

from codedance_cli.engines.swift import frozen_vit, vit_autocast, vit_varlen
from codedance_cli.engines.swift.qwen_pil import register

register()
frozen_vit.install()
vit_varlen.install_if_asked()
vit_autocast.install_if_asked()
