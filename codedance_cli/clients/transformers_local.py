"""In-process transformers client: small models, tests, and machines without a server.

Generation runs on one dedicated thread (see `generate_batcher`) so the event
loop keeps driving sandboxes while the model computes, and concurrent requests
(the tool loop runs many trajectories at once) are coalesced into one
left-padded `model.generate` call per group of identical generation options:
a batch of 32 costs little more than one sequence.
"""

from __future__ import annotations

import io
import logging
import time
import weakref
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from codedance_cli.clients.base import Generation, Messages
from codedance_cli.clients.generate_batcher import GenerateBatcher
from codedance_cli.errors import BadInput
from codedance_cli.models.qwen_processor import load_processor
from codedance_cli.trajectory.media import decode_data_url

log = logging.getLogger(__name__)


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


def attention_kernels(device: str) -> AbstractContextManager:
    """On cuda, scaled-dot-product attention without its cuDNN backend, which torch prefers there.

    cuDNN builds a new graph for every new (batch, length) shape, and generation meets a new shape with almost
    every prompt: on an H100 in bf16 that cost 0.3-2 s per call with the tiny model (89% of the time, measured with
    torch.profiler), against ~0.15 s with the flash / memory-efficient kernels, which need no per-shape set-up.
    """
    if not device.startswith("cuda"):
        return nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])


def load_model(path: str, dtype: Any) -> Any:
    """AutoModelForImageTextToText, or AutoModelForCausalLM for text-only models (the Qwen2 judge)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    model_type = AutoConfig.from_pretrained(path).model_type
    auto = AutoModelForImageTextToText if model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES else AutoModelForCausalLM
    return auto.from_pretrained(path, dtype=dtype)


@dataclass(frozen=True)
class GenerationOptions:
    """What must be identical for requests to share one `model.generate` call (the batching key)."""

    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()

    def generate_kwargs(self, tokenizer: Any, pad_token_id: int) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "do_sample": self.temperature > 0, "pad_token_id": pad_token_id}
        if self.temperature > 0:
            kwargs.update(temperature=self.temperature, top_p=self.top_p)
        if self.stop:
            kwargs.update(stop_strings=list(self.stop), tokenizer=tokenizer)  # HF stops each row at its own match
        return kwargs


@dataclass(frozen=True, eq=False)
class GenerationRequest:
    messages: Messages
    options: GenerationOptions


# Per-token inputs that are left-padded to a common length (value used for padding; None = the pad token id).
# Every other input (pixel_values, image_grid_thw, ...) is per image and is concatenated in request order,
# which is how the HF processors batch: the model scatters image features over placeholder tokens row-major.
PADDED_INPUTS: dict[str, int | None] = {"input_ids": None, "attention_mask": 0, "mm_token_type_ids": 0, "token_type_ids": 0}


def collate_left_padded(features: Sequence[Mapping[str, Any]], pad_token_id: int) -> dict[str, Any]:
    """Single-conversation processor outputs (batch dim 1) -> one left-padded batch."""
    import torch

    length = max(int(feature["input_ids"].shape[-1]) for feature in features)
    batch: dict[str, Any] = {}
    for name in dict.fromkeys(name for feature in features for name in feature):
        present = [feature[name] for feature in features if name in feature]
        if name in PADDED_INPUTS:
            value = pad_token_id if PADDED_INPUTS[name] is None else PADDED_INPUTS[name]
            batch[name] = torch.cat([_left_pad(row, length, value) for row in present])
        else:
            batch[name] = torch.cat(present)
    return batch


def _left_pad(row: Any, length: int, value: int) -> Any:
    import torch

    missing = length - row.shape[-1]
    return torch.cat([row.new_full((row.shape[0], missing), value), row], dim=-1) if missing else row


@dataclass(frozen=True)
class RowEnd:
    """Where one batch row's own output ends, and why."""

    tokens: int  # completion tokens, the final EOS included (as a single-sequence call returns it)
    text: str  # decoded up to that end, cut before the first stop string
    finish_reason: str  # "stop" (EOS or stop string) or "length"


def finish_row(new_tokens: list[int], *, eos_ids: set[int], stop: Sequence[str], decode: Any) -> RowEnd:
    """Cut one row at its first EOS or its first stop string; what follows is padding or another row's business.

    After a row finishes, `generate` keeps filling it with the pad token until the whole batch is done, so the
    row's length says nothing; the earliest EOS (and, with stop strings, the shortest prefix whose text contains
    one, which is where HF's stop criterion fired) does.
    """
    end = next((i + 1 for i, token in enumerate(new_tokens) if token in eos_ids), None)
    tokens = new_tokens if end is None else new_tokens[:end]
    text = decode(tokens)
    cut = min((text.find(s) for s in stop if s in text), default=-1)
    if cut >= 0:
        used = _shortest_prefix_with_stop(tokens, stop, decode)
        return RowEnd(tokens=used, text=text[:cut], finish_reason="stop")
    return RowEnd(tokens=len(tokens), text=text, finish_reason="length" if end is None else "stop")


def _shortest_prefix_with_stop(tokens: list[int], stop: Sequence[str], decode: Any) -> int:
    """Binary search over prefixes (containing a stop string is monotone in the prefix length): log(n) decodes."""
    low, high = 1, len(tokens)
    while low < high:
        middle = (low + high) // 2
        text = decode(tokens[:middle])
        if any(s in text for s in stop):
            high = middle
        else:
            low = middle + 1
    return high


DEFAULT_MAX_BATCH_SIZE = 32  # rows per `model.generate`; the loop's default concurrency (16) fits in one


class TransformersClient:
    """Processor + model with the model's chat template; concurrent `generate` calls run as batches."""

    def __init__(
        self,
        path: str,
        *,
        dtype: str = "auto",
        device: str = "auto",
        max_pixels: int | None = None,
        min_pixels: int | None = None,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        gather_s: float = 0.0,
    ) -> None:
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
            self.model = load_model(path, resolve_dtype(dtype, self.device)).to(self.device)
        except OSError as exc:
            raise BadInput(f"model.path {path!r}: cannot load model ({str(exc).splitlines()[0]})") from None
        self.model.eval()
        self.tokenizer = getattr(self.processor, "tokenizer", self.processor)  # text-only models: the processor is the tokenizer
        self.eos_ids = self._eos_ids()
        self.pad_token_id = self._pad_token_id()
        self._batcher: GenerateBatcher[GenerationRequest, Generation] = GenerateBatcher(
            self._generate_batch, key=lambda request: request.options, max_batch_size=max_batch_size, gather_s=gather_s
        )
        weakref.finalize(self, self._batcher.stop)  # dropped without aclose: the worker thread still ends

    @classmethod
    def from_spec(cls, spec: Any) -> TransformersClient:
        return cls(spec.path, dtype=spec.dtype, device=spec.device, max_pixels=spec.max_pixels, min_pixels=spec.min_pixels,
                   max_batch_size=getattr(spec, "max_batch_size", None) or DEFAULT_MAX_BATCH_SIZE)

    @property
    def max_batch_size(self) -> int:
        return self._batcher.max_batch_size

    def _eos_ids(self) -> set[int]:
        configured = self.model.generation_config.eos_token_id
        if configured is None:
            configured = self.tokenizer.eos_token_id
        return set(configured if isinstance(configured, list) else [configured])

    def _pad_token_id(self) -> int:
        for candidate in (self.tokenizer.pad_token_id, self.model.generation_config.pad_token_id):
            if candidate is not None:
                return int(candidate)
        return min(self.eos_ids)

    def _prepare(self, messages: Messages) -> Mapping[str, Any]:
        return self.processor.apply_chat_template(
            to_processor_messages(messages), add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
        )

    def _generate_batch(self, requests: list[GenerationRequest]) -> list[Generation | BaseException]:
        """One left-padded `model.generate` over requests that share their options (runs on the worker thread).

        A request whose messages cannot be prepared (an unreadable image, say) fails alone; the rest still run.
        """
        started = time.perf_counter()
        prepared: dict[int, Mapping[str, Any]] = {}
        outcomes: dict[int, Generation | BaseException] = {}
        for index, request in enumerate(requests):
            try:
                prepared[index] = self._prepare(request.messages)
            except Exception as exc:  # noqa: BLE001 - handed to that request's caller
                outcomes[index] = exc
        if prepared:
            outcomes.update(zip(prepared, self._generate_prepared(list(prepared.values()), requests[0].options, started), strict=True))
        return [outcomes[index] for index in range(len(requests))]

    def _generate_prepared(self, features: list[Mapping[str, Any]], options: GenerationOptions, started: float) -> list[Generation]:
        import torch

        batch = {name: value.to(self.device) for name, value in collate_left_padded(features, self.pad_token_id).items()}
        with torch.inference_mode(), attention_kernels(self.device):
            output = self.model.generate(**batch, **options.generate_kwargs(self.tokenizer, self.pad_token_id))
        new_tokens = output[:, batch["input_ids"].shape[-1]:].tolist()
        seconds = time.perf_counter() - started
        generations = []
        for feature, row in zip(features, new_tokens, strict=True):
            end = finish_row(row, eos_ids=self.eos_ids, stop=options.stop, decode=self._decode)
            generations.append(Generation(text=end.text, prompt_tokens=int(feature["input_ids"].shape[-1]), completion_tokens=end.tokens,
                                          seconds=seconds, finish_reason=end.finish_reason))
        return generations

    def _decode(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True)

    async def generate(
        self,
        messages: Messages,
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: list[str] | None = None,
    ) -> Generation:
        options = GenerationOptions(max_new_tokens, float(temperature), float(top_p) if temperature > 0 else 1.0, tuple(stop or ()))
        return await self._batcher.submit(GenerationRequest(messages, options))

    async def aclose(self) -> None:
        await self._batcher.aclose()
