"""In-process transformers client: small models, tests, and machines without a server.

Generation runs on one dedicated thread so the event loop keeps driving
sandboxes while the model computes; one thread also serialises calls, because
one model instance is not safe to run from several threads at once, without
tying up the default executor that other async code relies on.
"""

from __future__ import annotations

import asyncio
import io
from concurrent.futures import ThreadPoolExecutor
import time
from pathlib import Path
from typing import Any

from PIL import Image

from codedance_cli.clients.base import Generation, Messages
from codedance_cli.errors import BadInput
from codedance_cli.loop.format import decode_data_url


def to_processor_messages(messages: Messages) -> list[dict[str, Any]]:
    """OpenAI-style messages -> HF processor messages (data-URL images decoded to PIL)."""
    converted: list[dict[str, Any]] = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str) or content is None:
            parts = [{"type": "text", "text": content or ""}]
        else:
            parts = []
            for part in content:
                if part.get("type") == "image_url":
                    url = part["image_url"]["url"] if isinstance(part["image_url"], dict) else part["image_url"]
                    image = Image.open(io.BytesIO(decode_data_url(url))) if url.startswith("data:") else Image.open(url)
                    parts.append({"type": "image", "image": image.convert("RGB")})
                elif part.get("type") == "text":
                    parts.append({"type": "text", "text": part["text"]})
        converted.append({"role": message["role"], "content": parts})
    return converted


class QwenVLImageOnlyProcessor:
    """The image half of a Qwen2-VL-family processor, for machines without torchvision.

    transformers refuses to build a Qwen2-VL processor without torchvision (its
    video processor needs it, and PyPI's torchvision wheels are CUDA builds that
    do not load next to a CPU-only torch). Images do not need it: the PIL image
    processor makes pixel values and grids, and each image placeholder is
    expanded to grid.prod() / merge_size**2 tokens, which is the processor's
    documented contract with the model. Videos are not supported here.
    """

    def __init__(self, tokenizer: Any, image_processor: Any, chat_template: str | None) -> None:
        self.tokenizer, self.image_processor, self.chat_template = tokenizer, image_processor, chat_template
        self.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"

    def apply_chat_template(self, messages: list[dict[str, Any]], *, add_generation_prompt: bool = True, **_: Any) -> Any:
        from transformers import BatchFeature

        text = self.tokenizer.apply_chat_template(messages, chat_template=self.chat_template, add_generation_prompt=add_generation_prompt, tokenize=False)
        images = [part["image"] for message in messages for part in message["content"] if part.get("type") == "image"]
        features: dict[str, Any] = {}
        if images:
            vision = self.image_processor(images=images, return_tensors="pt")
            features.update(vision)
            merge = self.image_processor.merge_size**2
            pieces = text.split(self.image_token)
            if len(pieces) != len(images) + 1:
                raise ValueError(f"chat template produced {len(pieces) - 1} image placeholders for {len(images)} images")
            counts = [int(grid.prod()) // merge for grid in vision["image_grid_thw"]]
            text = pieces[0] + "".join(self.image_token * n + piece for n, piece in zip(counts, pieces[1:], strict=True))
        features.update(self.tokenizer(text, return_tensors="pt"))
        return BatchFeature(features)


def load_processor(path: str, **image_kwargs: Any) -> Any:
    """AutoProcessor, or where torchvision is missing, `QwenVLImageOnlyProcessor` for Qwen2-VL-family models."""
    import json

    import transformers
    from transformers import AutoProcessor, AutoTokenizer

    try:
        return AutoProcessor.from_pretrained(path, **image_kwargs)
    except ImportError as exc:
        if "torchvision" not in str(exc).lower():
            raise
    config_file = Path(path) / "processor_config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    image_class = str(config.get("image_processor", {}).get("image_processor_type", "")).removesuffix("Fast") + "Pil"
    if not (image_class.startswith("Qwen2VL") and hasattr(transformers, image_class)):
        raise BadInput(f"model.path {path!r}: its processor needs torchvision, which is not installed") from None
    tokenizer = AutoTokenizer.from_pretrained(path)
    image_processor = getattr(transformers, image_class).from_pretrained(path, **image_kwargs)
    template_file = Path(path) / "chat_template.jinja"
    chat_template = template_file.read_text() if template_file.is_file() else getattr(tokenizer, "chat_template", None)
    return QwenVLImageOnlyProcessor(tokenizer, image_processor, chat_template)


def resolve_device(device: str) -> str:
    import torch

    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str, device: str) -> Any:
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, dtype)


class TransformersClient:
    """AutoProcessor + AutoModelForImageTextToText with the model's chat template."""

    def __init__(self, path: str, *, dtype: str = "auto", device: str = "auto", max_pixels: int | None = None, min_pixels: int | None = None) -> None:
        from transformers import AutoModelForImageTextToText

        if not (Path(path).is_dir() or "/" in path):
            raise BadInput(f"model.path {path!r}: not a local folder or hub id")
        self.device = resolve_device(device)
        processor_kwargs: dict[str, Any] = {}
        if max_pixels is not None:
            processor_kwargs["max_pixels"] = max_pixels
        if min_pixels is not None:
            processor_kwargs["min_pixels"] = min_pixels
        try:
            self.processor = load_processor(path, **processor_kwargs)
            self.model = AutoModelForImageTextToText.from_pretrained(path, dtype=resolve_dtype(dtype, self.device)).to(self.device)
        except OSError as exc:
            raise BadInput(f"model.path {path!r}: cannot load model ({str(exc).splitlines()[0]})") from None
        self.model.eval()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="codedance-generate")

    @classmethod
    def from_spec(cls, spec: Any) -> TransformersClient:
        return cls(spec.path, dtype=spec.dtype, device=spec.device, max_pixels=spec.max_pixels, min_pixels=spec.min_pixels)

    def _generate_sync(self, messages: Messages, max_new_tokens: int, temperature: float, top_p: float, stop: list[str] | None) -> Generation:
        import torch

        started = time.perf_counter()
        inputs = self.processor.apply_chat_template(
            to_processor_messages(messages), add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
        ).to(self.device)
        options: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": temperature > 0}
        if temperature > 0:
            options.update(temperature=temperature, top_p=top_p)
        if stop:
            options.update(stop_strings=stop, tokenizer=self.processor.tokenizer)
        prompt_length = inputs["input_ids"].shape[-1]
        with torch.inference_mode():
            output = self.model.generate(**inputs, **options)
        new_tokens = output[0, prompt_length:]
        eos_ids = self.model.generation_config.eos_token_id
        eos_ids = set(eos_ids if isinstance(eos_ids, list) else [eos_ids])
        ended = len(new_tokens) > 0 and int(new_tokens[-1]) in eos_ids
        text = self.processor.tokenizer.decode(new_tokens, skip_special_tokens=True)
        return Generation(
            text=text,
            prompt_tokens=int(prompt_length),
            completion_tokens=int(len(new_tokens)),
            seconds=time.perf_counter() - started,
            finish_reason="stop" if ended or len(new_tokens) < max_new_tokens else "length",
        )

    async def generate(
        self,
        messages: Messages,
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: list[str] | None = None,
    ) -> Generation:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._generate_sync, messages, max_new_tokens, temperature, top_p, stop)

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False)
