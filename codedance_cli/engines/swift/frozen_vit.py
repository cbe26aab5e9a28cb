"""A frozen vision tower gets no backward pass: ms-swift's gradient-checkpointing set-up, undone where it only costs.

With gradient checkpointing on, ms-swift calls transformers' `enable_input_require_grads()` on the whole model. In
transformers 5 that hooks the input embeddings of every sub-model, the vision tower's patch embedding included, so the
ViT's activations require grad even when every ViT weight is frozen (the paper's recipe, `freeze_vit: true`). Autograd
then runs the ViT's backward (its gradients reach nothing) and, with the tower checkpointed too, its forward again.
On the nano model, profiled over two steps, that was 31 attention backward calls a step instead of the LLM's 6
(tests/test_swift_frozen_vit.py checks it); on a Qwen2.5-VL-sized ViT it is 32 blocks over ~10k patches a sample.
ms-swift's own switch (`--vit_gradient_checkpointing false`) removes the recomputation but not the backward: the hook
sits on the model, not on the tower.

`install()` wraps ms-swift's `_prepare_gradient_checkpointing`: afterwards, a vision tower whose encoder has no
trainable parameter loses that hook and its checkpointing. The aligner (Qwen2.5-VL's `merger`, inside the tower but
after every block) may be trained: its weights' gradients need its input's values, not a graph through the blocks.
ms-swift's own guard (`patch_frozen_module`) does not apply then, since the tower holds a trained parameter. The loss
and every trained parameter's gradient are unchanged. Loaded by our ms-swift plugin files (sft_plugin.py,
grpo_plugin.py); CODEDANCE_KEEP_VIT_BACKWARD=1 keeps ms-swift's behaviour (the benchmark's before/after row).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from torch import nn

KEEP_ENV = "CODEDANCE_KEEP_VIT_BACKWARD"
HOOK_NAME = "make_inputs_require_grads"  # the hook transformers' enable_input_require_grads registers


def _arch_modules(model: nn.Module, part_name: str, fallback: str) -> list[nn.Module]:
    """The modules ms-swift's model_arch names for a part (`vision_tower`, `aligner`: dotted paths), else every module
    whose last name part is `fallback`."""
    arch = getattr(getattr(model, "model_meta", None), "model_arch", None)
    found = []
    for name in getattr(arch, part_name, None) or []:
        module: Any = model
        for part in name.split("."):
            module = getattr(module, part, None)
        if isinstance(module, nn.Module):
            found.append(module)
    return found or [module for name, module in model.named_modules() if name.split(".")[-1] == fallback]


def vision_towers(model: nn.Module) -> list[nn.Module]:
    """The model's vision towers (e.g. `model.visual`)."""
    return _arch_modules(model, "vision_tower", "visual")


def aligners(model: nn.Module) -> list[nn.Module]:
    """The vision-language aligners (Qwen2.5-VL: `model.visual.merger`)."""
    return _arch_modules(model, "aligner", "merger")


def encoder_frozen(tower: nn.Module, aligner_modules: list[nn.Module]) -> bool:
    """No trainable parameter in the tower outside its aligner (which runs after every encoder block)."""
    aligned = {id(parameter) for module in aligner_modules for parameter in module.parameters()}
    return not any(parameter.requires_grad for parameter in tower.parameters() if id(parameter) not in aligned)


def release_frozen_tower(tower: nn.Module, aligner_modules: list[nn.Module]) -> None:
    """Remove the input-grad hooks on a frozen encoder's input embeddings, and its checkpointing."""
    if not encoder_frozen(tower, aligner_modules):
        return  # a trained encoder (or one with adapters) needs both
    embeddings = tower.get_input_embeddings() if hasattr(tower, "get_input_embeddings") else None
    if isinstance(embeddings, nn.Module):
        for key, hook in list(embeddings._forward_hooks.items()):
            if getattr(hook, "__name__", "") == HOOK_NAME:
                del embeddings._forward_hooks[key]
    if getattr(tower, "supports_gradient_checkpointing", False) and getattr(tower, "is_gradient_checkpointing", False):
        tower.gradient_checkpointing_disable()


def _released(prepare: Callable[..., None]) -> Callable[..., None]:
    def prepare_gradient_checkpointing(self: Any, model: nn.Module) -> None:
        prepare(self, model)
        if os.environ.get(KEEP_ENV) != "1":
            for tower in vision_towers(model):
                release_frozen_tower(tower, aligners(model))

    prepare_gradient_checkpointing._codedance_frozen_vit = True  # type: ignore[attr-defined]
    return prepare_gradient_checkpointing


def install() -> None:
    """Wrap ms-swift's gradient-checkpointing set-up in this process; idempotent."""
    from swift.trainers.mixin import SwiftMixin

    if not getattr(SwiftMixin._prepare_gradient_checkpointing, "_codedance_frozen_vit", False):
        SwiftMixin._prepare_gradient_checkpointing = _released(SwiftMixin._prepare_gradient_checkpointing)
