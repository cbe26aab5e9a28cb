#!/usr/bin/env python
"""Build a tiny, randomly initialised Qwen2.5-VL (model + tokenizer + processor) with no network.

Why: tests, the demo and CI must exercise the real Qwen2.5-VL code paths (transformers,
ms-swift, the tool loop) without downloading 16 GB of weights. The result has the real
architecture (`Qwen2_5_VLForConditionalGeneration`), Qwen's chat special tokens with
consistent ids in config.json, a Qwen-style chat template (system / tools / images /
tool responses), and the Qwen2-VL image processor with a small pixel budget so CPU runs
take a second. Everything is seeded: the same script gives the same files.

Usage: python scripts/make_tiny_model.py OUT_DIR [--vocab-size N] [--hidden-size N] [--layers N]
Bigger shapes (for the GPU throughput checks) come from the same flags; Qwen2.5-VL-3B's shape is
--hidden-size 2048 --layers 36 --heads 16 --kv-heads 2 --intermediate-size 11008 --padded-vocab-size 151936
--tie-word-embeddings --vision-depth 32 --vision-hidden-size 1280 --vision-heads 16 --vision-intermediate-size 3420
--vision-full-attention-every 8 (benchmarks/sft_throughput.py builds it with --device cuda).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

# Qwen2.5-VL's added tokens in Qwen's order; the last group is CodeDance's turn tags.
# `special=True` ones are stripped by decode(skip_special_tokens=True); tags the model
# writes as text (tool_call, think, answer...) stay visible, as in Qwen's tokenizer.
SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>",
    "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>", "<|box_end|>",
    "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]
TEXT_TAG_TOKENS = [
    "<tool_call>", "</tool_call>",
    "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
    "<tool_response>", "</tool_response>", "<think>", "</think>", "<answer>", "</answer>", "<code>", "</code>",
]
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
FIM_AND_REPO = {"<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"}

# Qwen2.5-VL's chat template semantics, with the Qwen2.5 tool-calling block added:
# a default system turn, content given as a string or as a list of image/video/text
# parts, `tools` listed in the system turn, assistant `tool_calls` as <tool_call> JSON,
# consecutive `tool` messages grouped into one user turn of <tool_response> blocks.
# A system message that already lists the tools (`codedance-toolcall-v1` does: SFT, eval and ms-swift render it
# without `tools=`) gets no second list: verl's tool agent loop always passes `tools=`, and the prompt it renders
# must be the one the model was trained on.
CHAT_TEMPLATE = r"""{%- set image_count = namespace(value=0) -%}
{%- set video_count = namespace(value=0) -%}
{%- macro render_content(content) -%}
{%- if content is string -%}{{- content -}}
{%- elif content is none -%}
{%- else -%}{%- for part in content -%}
{%- if part['type'] == 'image' or 'image' in part or 'image_url' in part -%}
{%- set image_count.value = image_count.value + 1 -%}
{%- if add_vision_id %}Picture {{ image_count.value }}: {% endif -%}
<|vision_start|><|image_pad|><|vision_end|>
{%- elif part['type'] == 'video' or 'video' in part -%}
{%- set video_count.value = video_count.value + 1 -%}
{%- if add_vision_id %}Video {{ video_count.value }}: {% endif -%}
<|vision_start|><|video_pad|><|vision_end|>
{%- elif 'text' in part -%}{{- part['text'] -}}
{%- endif -%}
{%- endfor -%}{%- endif -%}
{%- endmacro -%}
{%- if messages[0]['role'] == 'system' -%}
{%- set system_text = render_content(messages[0]['content']) -%}
{%- set rest = messages[1:] -%}
{%- else -%}
{%- set system_text = 'You are a helpful assistant.' -%}
{%- set rest = messages -%}
{%- endif -%}
{{- '<|im_start|>system\n' + system_text -}}
{%- if tools and '<tools>' not in system_text -%}
{{- '\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>' -}}
{%- for tool in tools -%}{{- '\n' + (tool | tojson) -}}{%- endfor -%}
{{- '\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>' -}}
{%- endif -%}
{{- '<|im_end|>\n' -}}
{%- for message in rest -%}
{%- if message['role'] == 'tool' -%}
{%- if loop.first or rest[loop.index0 - 1]['role'] != 'tool' -%}{{- '<|im_start|>user' -}}{%- endif -%}
{{- '\n<tool_response>\n' + render_content(message['content']) + '\n</tool_response>' -}}
{%- if loop.last or rest[loop.index0 + 1]['role'] != 'tool' -%}{{- '<|im_end|>\n' -}}{%- endif -%}
{%- elif message['role'] == 'assistant' and message['tool_calls'] -%}
{{- '<|im_start|>assistant' -}}
{%- if message['content'] -%}{{- '\n' + render_content(message['content']) -}}{%- endif -%}
{%- for call in message['tool_calls'] -%}
{%- if call['function'] is defined -%}{%- set call = call['function'] -%}{%- endif -%}
{%- set arguments = call['arguments'] if call['arguments'] is string else (call['arguments'] | tojson) -%}
{{- '\n<tool_call>\n{"name": "' + call['name'] + '", "arguments": ' + arguments + '}\n</tool_call>' -}}
{%- endfor -%}
{{- '<|im_end|>\n' -}}
{%- else -%}
{{- '<|im_start|>' + message['role'] + '\n' + render_content(message['content']) + '<|im_end|>\n' -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%}
"""

# Training text for the BPE: Python of the kind the model writes, English reasoning,
# digits, and the turn format. Repeated with variations so merges are meaningful.
_CODE = '''
from PIL import Image, ImageDraw, ImageOps
import numpy as np
import cv2
import matplotlib.pyplot as plt

img = input_image.convert("RGB")
width, height = img.size
print(f"size: {width}x{height}")
crop = img.crop((0, 0, width // 2, height // 2))
crop = crop.resize((crop.width * 2, crop.height * 2))
display(crop)
arr = np.array(img)
gray = cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY)
edges = cv2.Canny(gray, 50, 150)
contours, _ = cv2.findContours(edges, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
print("count:", len(contours))
for i, c in enumerate(contours):
    x, y, w, h = cv2.boundingRect(c)
    if w * h > 100:
        print(i, x, y, w, h)
plt.imshow(gray, cmap="gray")
plt.title("gray")
plt.show()
def count_objects(image, threshold=128):
    """Count bright blobs."""
    mask = np.asarray(image.convert("L")) > threshold
    return int(mask.sum())
result = count_objects(img)
print(result)
'''
_PROSE = '''
The user asks how many circles are in the image. I will look at the picture first.
Let me crop the top left region and zoom in to read the small text.
The output shows 3 red squares and 2 blue circles, so the answer is 5.
The chart has bars for 2019, 2020, 2021 and 2022; the tallest bar is 2021.
Think with the tool's result, then answer. Determine if it adequately answers the user's question.
If the information is insufficient or irrelevant, formulate a new strategy and execute a new tool call.
Code executed successfully. No explicit output or figures produced.
Traceback (most recent call last): NameError: name 'x' is not defined
You are a helpful assistant. Answer with a single word or number.
Which option is correct? A. red B. green C. blue D. yellow
'''
_DIGITS = " ".join(str(n) for n in range(0, 1000, 7)) + " 3.14159 2.71828 0.5 1e-5 100% 42"


def corpus(project_items: int = 200) -> list[str]:
    """Deterministic training lines for the tokenizer: generic code and prose, plus the project's own text.

    Why the project's text: a real tokenizer has seen a web's worth of Python and English, so a solution
    cell costs a few hundred tokens; a BPE trained on a page of samples costs ~2 characters a token, which
    doubles every training sequence and turn budget. The system prompts and the procedural families'
    questions, thoughts and code are the text this model will read and write.
    """
    tags = " ".join(TEXT_TAG_TOKENS)
    chunks = [_CODE, _PROSE, _DIGITS, tags, '{"name": "execute_python_code", "arguments": {"code": "print(1)"}}']
    lines: list[str] = []
    for repeat in range(8):
        for chunk in chunks:
            lines.extend(line.replace("img", "img" if repeat % 2 else "image") for line in chunk.splitlines())
    for text in project_texts(project_items):
        lines.extend(text.splitlines())
    return lines


def project_texts(n_items: int) -> list[str]:
    """System prompts and procedural items (seed 99, apart from the data seeds), as the model will see them."""
    if n_items <= 0:
        return []
    from codedance_cli.loop import prompts
    from codedance_cli.procedural.registry import iter_items
    from codedance_cli.procedural.solve import answer_turn_text, code_turn_text, fill_final_thought

    versions = (prompts.DEFAULT_VERSION, prompts.TOOLCALL_VERSION)
    texts = [prompts.system_prompt(version) for version in versions]
    for index, item in iter_items(n_items, seed=99):
        texts.append(item.question)
        texts.extend(code_turn_text(step.thought, step.code, versions[index % 2]) for step in item.steps)
        thought = fill_final_thought(item.final_thought, item.ground_truth, item.params)
        texts.append(answer_turn_text(thought, item.ground_truth))
    return texts


def build_tokenizer(vocab_size: int, project_items: int = 200):
    """Train a byte-level BPE with Qwen's pre-tokenizer and wrap it as a Qwen2Tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import AddedToken, Qwen2Tokenizer

    # Train with Qwen's own normalizer / pre-tokenizer so merges match how Qwen2Tokenizer splits text.
    template = Qwen2Tokenizer()
    trainee = Tokenizer(models.BPE())
    trainee.normalizer = template._tokenizer.normalizer
    trainee.pre_tokenizer = template._tokenizer.pre_tokenizer
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(SPECIAL_TOKENS) - len(TEXT_TAG_TOKENS),
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    trainee.train_from_iterator(corpus(project_items), trainer=trainer)
    model_json = json.loads(trainee.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model_json["merges"]]
    vocab = dict(model_json["vocab"])
    for token in [*SPECIAL_TOKENS, *TEXT_TAG_TOKENS]:  # fixed ids right after the BPE vocabulary, in Qwen's order
        vocab[token] = len(vocab)

    tokenizer = Qwen2Tokenizer(
        vocab=vocab, merges=merges, unk_token=None, pad_token="<|endoftext|>", eos_token="<|im_end|>",
        errors="replace", model_max_length=32768, clean_up_tokenization_spaces=False, split_special_tokens=False,
    )
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS], special_tokens=True)
    tokenizer.add_tokens([AddedToken(t, special=t in FIM_AND_REPO, normalized=False) for t in TEXT_TAG_TOKENS])
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_image_processor(min_pixels: int, max_pixels: int):
    """The Qwen2-VL image processor built from arguments (torchvision backend if present, else PIL)."""
    try:
        import torchvision  # noqa: F401
        from transformers import Qwen2VLImageProcessor as ImageProcessor
    except ImportError:
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil as ImageProcessor
    return ImageProcessor(
        min_pixels=min_pixels, max_pixels=max_pixels, patch_size=14, temporal_patch_size=2, merge_size=2,
        image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD),
    )


def build_config(tokenizer, args: argparse.Namespace):
    from transformers import Qwen2_5_VLConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    vocab_size = max((len(tokenizer) + 63) // 64 * 64, args.padded_vocab_size)  # padded like Qwen's embeddings
    head_dim = args.hidden_size // args.heads
    half, share = head_dim // 2, head_dim // 2 * 3 // 8  # Qwen splits rotary dims t:h:w as 2:3:3
    mrope = [half - 2 * share, share, share]
    text = dict(
        vocab_size=vocab_size, hidden_size=args.hidden_size, intermediate_size=args.intermediate_size or args.hidden_size * 2,
        num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=kv_heads(args),
        max_position_embeddings=32768, rms_norm_eps=1e-6, use_sliding_window=False, max_window_layers=args.layers,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": mrope},
        bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
    )
    vision = dict(
        depth=args.vision_depth, hidden_size=args.vision_hidden_size,
        intermediate_size=args.vision_intermediate_size or args.vision_hidden_size * 2,
        num_heads=args.vision_heads or max(1, args.vision_hidden_size // 32), out_hidden_size=args.hidden_size, patch_size=14,
        spatial_merge_size=2, temporal_patch_size=2, window_size=112, tokens_per_second=2,
        fullatt_block_indexes=full_attention_blocks(args),
    )
    config = Qwen2_5_VLConfig(
        text_config=text, vision_config=vision,
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=args.tie_word_embeddings,
    )
    config.architectures = ["Qwen2_5_VLForConditionalGeneration"]
    return config


def kv_heads(args: argparse.Namespace) -> int:
    """Key/value heads: --kv-heads, else half the attention heads (the tiny model's grouping)."""
    return args.kv_heads or max(1, args.heads // 2)


def full_attention_blocks(args: argparse.Namespace) -> list[int]:
    """ViT blocks with full attention (the rest use windows): every --vision-full-attention-every-th, else the last."""
    every = args.vision_full_attention_every
    if not every:
        return [args.vision_depth - 1]
    return list(range(every - 1, args.vision_depth, every))


def video_processor_config(min_pixels: int, max_pixels: int) -> dict:
    """What `Qwen2VLVideoProcessor(min_pixels=..., max_pixels=...).to_dict()` holds (written by hand without torchvision)."""
    return {
        "do_convert_rgb": True, "do_normalize": True, "do_rescale": True, "do_resize": True, "do_sample_frames": False,
        "image_mean": list(CLIP_MEAN), "image_std": list(CLIP_STD), "max_frames": 768, "merge_size": 2, "min_frames": 4,
        "patch_size": 14, "resample": 3, "rescale_factor": 1 / 255, "return_metadata": False,
        "size": {"longest_edge": max_pixels, "shortest_edge": min_pixels}, "temporal_patch_size": 2,
        "video_processor_type": "Qwen2VLVideoProcessor",
    }


def save_processor(out_dir: Path, tokenizer, image_processor, args: argparse.Namespace) -> None:
    """Save the Qwen2.5-VL processor: through the real class when torchvision is importable, else the same files by hand.

    transformers needs torchvision to *instantiate* a video processor, but the saved files are plain
    JSON; writing them directly lets this script run in a venv without torchvision while the result
    still loads with AutoProcessor wherever torchvision is present.
    """
    try:
        import torchvision  # noqa: F401
        from transformers import Qwen2_5_VLProcessor, Qwen2VLVideoProcessor
    except ImportError:
        tokenizer._set_processor_class("Qwen2_5_VLProcessor")
        tokenizer.save_pretrained(out_dir)
        processor_config = {
            "image_processor": image_processor.to_dict(), "processor_class": "Qwen2_5_VLProcessor",
            "video_processor": video_processor_config(args.min_pixels, args.max_pixels),
        }
        (out_dir / "processor_config.json").write_text(json.dumps(processor_config, indent=2, sort_keys=True) + "\n")
        (out_dir / "chat_template.jinja").write_text(CHAT_TEMPLATE)
        return
    video_processor = Qwen2VLVideoProcessor(min_pixels=args.min_pixels, max_pixels=args.max_pixels)
    processor = Qwen2_5_VLProcessor(image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
                                    chat_template=CHAT_TEMPLATE)
    processor.save_pretrained(out_dir)


def build_text_model(tokenizer, args: argparse.Namespace):
    """A random Qwen2 causal LM on the same tokenizer: the nano judge, text-only like the paper's Qwen2.5-72B-Instruct."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=args.hidden_size, intermediate_size=args.intermediate_size or 2 * args.hidden_size,
        num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=kv_heads(args),
        max_position_embeddings=8192, tie_word_embeddings=True,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"), eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
    )
    return Qwen2ForCausalLM(config)


def build(out_dir: Path, args: argparse.Namespace) -> None:
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(args.seed)
    tokenizer = build_tokenizer(args.vocab_size, args.corpus_items)
    image_processor = build_image_processor(args.min_pixels, args.max_pixels)
    dtype = torch.float32 if args.dtype == "float32" else torch.bfloat16
    with torch.device(args.device):  # random init of a billions-parameter model takes seconds on a GPU, minutes on a CPU
        if args.text_only:
            model = build_text_model(tokenizer, args)
        else:
            model = Qwen2_5_VLForConditionalGeneration(build_config(tokenizer, args))
    model = model.to(dtype)
    model.eval()
    im_end, eot = tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")
    model.generation_config = GenerationConfig(
        bos_token_id=eot, eos_token_id=[im_end, eot], pad_token_id=eot, do_sample=False, max_new_tokens=64,
    )

    # Write into a sibling temp folder and rename, so a half-built model is never picked up.
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp)
        if args.text_only:
            tokenizer.save_pretrained(tmp)  # no processor: AutoProcessor falls back to the tokenizer
        else:
            save_processor(tmp, tokenizer, image_processor, args)
        kind = "Qwen2 (text-only)" if args.text_only else "Qwen2.5-VL"
        (tmp / "README.md").write_text(
            f"Random-init {kind}-architecture test model built by scripts/make_tiny_model.py; it writes gibberish.\n"
        )
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# Real Qwen2.5-VL shapes (their config.json), random init, our small tokenizer: the GPU benchmarks' models. A preset
# sets these defaults; any flag given on the command line still wins.
PRESETS: dict[str, dict[str, object]] = {
    "qwen2.5-vl-3b": dict(hidden_size=2048, layers=36, heads=16, kv_heads=2, intermediate_size=11008,
                          padded_vocab_size=151936, tie_word_embeddings=True, vision_depth=32, vision_hidden_size=1280,
                          vision_heads=16, vision_intermediate_size=3420, vision_full_attention_every=8),
    "qwen2.5-vl-7b": dict(hidden_size=3584, layers=28, heads=28, kv_heads=4, intermediate_size=18944,
                          padded_vocab_size=152064, tie_word_embeddings=False, vision_depth=32, vision_hidden_size=1280,
                          vision_heads=16, vision_intermediate_size=3420, vision_full_attention_every=8),
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--preset", choices=sorted(PRESETS), help="A real Qwen2.5-VL shape (flags given still win).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vocab-size", type=int, default=4096, help="Upper bound on the BPE vocabulary incl. added tokens.")
    parser.add_argument("--corpus-items", type=int, default=200, help="Procedural items in the tokenizer's training text (0: generic text only).")
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--kv-heads", type=int, default=0, help="Key/value heads (0: half of --heads).")
    parser.add_argument("--intermediate-size", type=int, default=0, help="LLM MLP width (0: 2 x --hidden-size).")
    parser.add_argument("--padded-vocab-size", type=int, default=0,
                        help="Embedding rows at least this many (Qwen2.5-VL: 151936), beyond the tokenizer's ids.")
    parser.add_argument("--tie-word-embeddings", action="store_true", help="Share embedding and LM head (Qwen2.5-VL-3B does).")
    parser.add_argument("--vision-depth", type=int, default=2)
    parser.add_argument("--vision-hidden-size", type=int, default=64)
    parser.add_argument("--vision-heads", type=int, default=0, help="ViT heads (0: --vision-hidden-size / 32).")
    parser.add_argument("--vision-intermediate-size", type=int, default=0, help="ViT MLP width (0: 2 x --vision-hidden-size).")
    parser.add_argument("--vision-full-attention-every", type=int, default=0,
                        help="Full attention in every N-th ViT block (Qwen2.5-VL: 8); 0: only the last block.")
    parser.add_argument("--device", default="cpu", help="Where the weights are initialised (cuda: fast for GPU-sized models).")
    parser.add_argument("--min-pixels", type=int, default=4 * 28 * 28)
    parser.add_argument("--max-pixels", type=int, default=64 * 28 * 28, help="Per-image pixel budget (64 visual tokens).")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--text-only", action="store_true", help="A text-only Qwen2 causal LM (the nano judge) on the same tokenizer.")
    preset = parser.parse_known_args(argv)[0].preset
    if preset:
        parser.set_defaults(**PRESETS[preset])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    build(args.out_dir, args)
    print(f"tiny {'Qwen2 (text-only)' if args.text_only else 'Qwen2.5-VL'} written to {args.out_dir}")


if __name__ == "__main__":
    main()
