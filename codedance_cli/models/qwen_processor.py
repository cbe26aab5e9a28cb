"""The Qwen2.5-VL processor for images only: one class for the transformers client and the ms-swift plug-in.

transformers refuses to build a Qwen2-VL-family processor without torchvision (its video processor needs it, and
PyPI's torchvision wheels are CUDA builds that do not load beside a CPU-only torch). Images do not need it: this is
the stock `Qwen2_5_VLProcessor` (same chat template, placeholder expansion and `mm_token_type_ids`) built with the
PIL image processor and no video processor. Videos are not supported.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from transformers import Qwen2_5_VLProcessor

from codedance_cli.errors import BadInput
from codedance_cli.models.pixel_budget import processor_config, record_pixel_budget


class ImageOnlyQwen2_5_VLProcessor(Qwen2_5_VLProcessor):
    """Qwen2.5-VL processor with an image processor and a tokenizer only (its attributes come from this signature).

    Checkpoints must stay loadable by the stock `AutoProcessor`, so saving writes the stock class name, puts back
    the source model's processor files (with their video processor settings) and records the pixel budget in use.
    """

    source_dir: Path | None = None

    def __init__(self, image_processor: Any = None, tokenizer: Any = None, chat_template: str | None = None, **kwargs: Any) -> None:
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)

    def pixel_budget(self) -> tuple[int, int]:
        size = self.image_processor.size
        return int(size["shortest_edge"]), int(size["longest_edge"])

    def save_pretrained(self, save_directory: str | Path, *args: Any, **kwargs: Any) -> Any:
        result = super().save_pretrained(save_directory, *args, **kwargs)
        target = Path(save_directory)
        for name in ("processor_config.json", "preprocessor_config.json", "video_preprocessor_config.json"):
            if self.source_dir is not None and (self.source_dir / name).is_file():
                shutil.copyfile(self.source_dir / name, target / name)
        record_pixel_budget(target / "processor_config.json", self.pixel_budget())
        tokenizer_config = target / "tokenizer_config.json"
        if tokenizer_config.is_file():
            data = json.loads(tokenizer_config.read_text())
            if data.get("processor_class") == type(self).__name__:
                data["processor_class"] = Qwen2_5_VLProcessor.__name__
                tokenizer_config.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        return result


def image_only_processor(path: str | Path, **image_kwargs: Any) -> ImageOnlyQwen2_5_VLProcessor:
    """The image-only processor of a Qwen2-VL-family checkpoint (PIL image processor; `max_pixels`/`min_pixels` apply)."""
    import transformers
    from transformers import AutoTokenizer

    image_class = str(processor_config(path).get("image_processor_type", "")).removesuffix("Fast").removesuffix("Pil") + "Pil"
    if not (image_class.startswith("Qwen2VL") and hasattr(transformers, image_class)):
        raise BadInput(f"model {str(path)!r}: its processor needs torchvision, which is not installed")
    tokenizer = AutoTokenizer.from_pretrained(path)
    image_processor = getattr(transformers, image_class).from_pretrained(path, **image_kwargs)
    template_file = Path(path) / "chat_template.jinja"
    chat_template = template_file.read_text() if template_file.is_file() else getattr(tokenizer, "chat_template", None)
    processor = ImageOnlyQwen2_5_VLProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template)
    processor.source_dir = Path(path)
    return processor


def load_processor(path: str, **image_kwargs: Any) -> Any:
    """AutoProcessor, or where torchvision is missing, the image-only processor for Qwen2-VL-family models."""
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(path, **image_kwargs)
    except ImportError as exc:
        if "torchvision" not in str(exc).lower():
            raise
    return image_only_processor(path, **image_kwargs)
