"""ms-swift model type and template `codedance_qwen2_5_vl`: Qwen2.5-VL for images without torchvision.

ms-swift's own `qwen2_5_vl` loads images through `qwen_vl_utils`, and transformers
builds the Qwen2.5-VL processor with a video processor; both import torchvision.
PyPI's torchvision wheels are CUDA builds that do not load beside a CPU-only
torch, so on a CPU machine the stock type cannot start. This variant (registered
through ms-swift's documented plugin points, `register_model` /
`register_template`, from our `--external_plugins` file) differs in two places:
the processor is the image-only Qwen2.5-VL processor (PIL image processor, no
video processor), and an image tag loads the picture with ms-swift's
`load_image`, leaving resizing to that processor (its min/max pixels). Videos
are not supported. On GPU machines with torchvision, use the stock `qwen2_5_vl`.
"""

from __future__ import annotations

import os
from typing import Any

from PIL import Image
from swift.model import register_model
from swift.model.model_arch import ModelArch
from swift.model.model_meta import ModelGroup, ModelMeta
from swift.model.models.qwen import Qwen2_5VLLoader
from swift.model.register import MODEL_MAPPING
from swift.template import register_template
from swift.template.register import TEMPLATE_MAPPING
from swift.template.templates.qwen import Qwen2_5VLTemplate, QwenTemplateMeta
from swift.template.vision_utils import load_image
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

from codedance_cli.models.qwen_processor import image_only_processor

NAME = "codedance_qwen2_5_vl"


class PilQwen2_5VLLoader(Qwen2_5VLLoader):
    """The stock loader with the image-only processor (no qwen_vl_utils, no torchvision)."""

    def get_processor(self, model_dir: str, config: Any) -> Any:
        budget = {key.lower(): int(value) for key in ("MIN_PIXELS", "MAX_PIXELS") if (value := os.environ.get(key))}
        return image_only_processor(model_dir, **budget)  # the budget in use is what the checkpoint records


class PilQwen2_5VLTemplate(Qwen2_5VLTemplate):
    """The stock template, images loaded and resized with PIL instead of qwen_vl_utils.fetch_image.

    Like fetch_image, the image is resized here to a multiple of patch x merge size within the
    processor's pixel budget, because the template then encodes it with `do_resize=False`. The
    image/video token ids are read from the tokenizer (the stock template hard-codes Qwen's ids,
    which a small-vocabulary test model does not share).
    """

    def init_processor(self, processor: Any) -> None:
        super().init_processor(processor)
        if processor is not None:
            tokenizer = getattr(processor, "tokenizer", processor)
            self.image_token_id = tokenizer.convert_tokens_to_ids("<|image_pad|>")
            self.video_token_id = tokenizer.convert_tokens_to_ids("<|video_pad|>")

    def replace_tag(self, media_type: str, index: int, inputs: Any) -> list:
        if media_type != "image":
            return super().replace_tag(media_type, index, inputs)
        image = load_image(inputs.images[index])
        processor = self.processor.image_processor
        factor = processor.patch_size * processor.merge_size
        min_pixels, max_pixels = self.processor.pixel_budget()  # MIN_PIXELS / MAX_PIXELS when set (the loader applies them)
        height, width = smart_resize(image.height, image.width, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels)
        if (width, height) != image.size:
            image = image.resize((width, height), Image.Resampling.BICUBIC)
        inputs.images[index] = image
        return ["<|vision_start|><|image_pad|><|vision_end|>"]


def register() -> None:
    """Register the model type and template once (the plugin file may be imported more than once)."""
    if NAME not in TEMPLATE_MAPPING:
        register_template(QwenTemplateMeta(NAME, template_cls=PilQwen2_5VLTemplate))
    if NAME not in MODEL_MAPPING:
        meta = ModelMeta(
            NAME,
            [ModelGroup([], NAME)],
            PilQwen2_5VLLoader,
            model_arch=ModelArch.qwen2_vl,
            architectures=["Qwen2_5_VLForConditionalGeneration"],
            requires=["transformers>=4.49"],
            tags=["vision"],
        )
        meta.is_multimodal = True
        register_model(meta)
