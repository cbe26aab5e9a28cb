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

import json
import os
import shutil
from pathlib import Path
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
from transformers import AutoTokenizer, Qwen2_5_VLProcessor
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil, smart_resize

NAME = "codedance_qwen2_5_vl"


class ImageOnlyQwen2_5_VLProcessor(Qwen2_5_VLProcessor):
    """Qwen2.5-VL processor with an image processor and a tokenizer only (its attributes come from this signature).

    Checkpoints must stay loadable by the stock `AutoProcessor`, so saving writes the stock class name and
    puts back the source model's processor files (with their video processor settings).
    """

    source_dir: Path | None = None

    def __init__(self, image_processor: Any = None, tokenizer: Any = None, chat_template: str | None = None, **kwargs: Any) -> None:
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)

    def save_pretrained(self, save_directory: str | Path, *args: Any, **kwargs: Any) -> Any:
        result = super().save_pretrained(save_directory, *args, **kwargs)
        target = Path(save_directory)
        for name in ("processor_config.json", "preprocessor_config.json", "video_preprocessor_config.json"):
            if self.source_dir is not None and (self.source_dir / name).is_file():
                shutil.copyfile(self.source_dir / name, target / name)
        _record_pixel_budget(target / "processor_config.json", pixel_budget(self.image_processor))
        tokenizer_config = target / "tokenizer_config.json"
        if tokenizer_config.is_file():
            data = json.loads(tokenizer_config.read_text())
            if data.get("processor_class") == type(self).__name__:
                data["processor_class"] = Qwen2_5_VLProcessor.__name__
                tokenizer_config.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        return result


def _record_pixel_budget(config_file: Path, budget: tuple[int, int]) -> None:
    """Save the budget training used as the checkpoint's image processor default, so evaluation sees the same tokens."""
    if not config_file.is_file():
        return
    data = json.loads(config_file.read_text())
    size = data.get("image_processor", {}).get("size")
    if isinstance(size, dict):
        size.update(shortest_edge=budget[0], longest_edge=budget[1])
    config_file.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


class PilQwen2_5VLLoader(Qwen2_5VLLoader):
    """The stock loader with the image-only processor (no qwen_vl_utils, no torchvision)."""

    def get_processor(self, model_dir: str, config: Any) -> Any:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        template_file = Path(model_dir) / "chat_template.jinja"
        chat_template = template_file.read_text() if template_file.is_file() else getattr(tokenizer, "chat_template", None)
        image_processor = Qwen2VLImageProcessorPil.from_pretrained(model_dir)
        processor = ImageOnlyQwen2_5_VLProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template)
        processor.source_dir = Path(model_dir)
        return processor


def pixel_budget(image_processor: Any) -> tuple[int, int]:
    """(min, max) pixels per image: MIN_PIXELS / MAX_PIXELS as the stock template reads them (through qwen_vl_utils),
    else the processor's saved size. `codedance sft` passes the recipe's budget only through MAX_PIXELS."""
    size = image_processor.size
    return (int(os.environ.get("MIN_PIXELS") or size["shortest_edge"]), int(os.environ.get("MAX_PIXELS") or size["longest_edge"]))


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
        min_pixels, max_pixels = pixel_budget(processor)
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
