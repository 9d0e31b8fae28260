"""Build the micro teacher: a tiny random-initialised Qwen3-VL with its own word-level tokenizer,
saved in transformers format so ``harness.teachers.QwenVLTeacher`` loads it like a real checkpoint.

Micro frames are 32x32 (a 4x4 grid of 8x8 cells): vision patch 8 and merge 2 make one LLM token per
2x2 cells, temporal patch 2 pairs frames, and the pixel budgets keep 32x32 frames at their size.
The builder's weights are random; `lab.micro.training` trains them and saves over the same folder.

    python -m lab.micro.weights_teacher [--out DIR] [--seed 0] [--size micro|small]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen3VLConfig, Qwen3VLForConditionalGeneration

from benchmarks.micro import vocabulary as bench_vocabulary
from harness.teachers.queries import build_synthesis_prompt, fallback_queries
from lab.micro import WEIGHTS

DEFAULT_OUT = WEIGHTS / "teacher"

# Fixed ids: the model config refers to them.
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                  "<|image_pad|>", "<|video_pad|>", "[UNK]"]
PAD_ID, IM_START_ID, IM_END_ID, VISION_START_ID, VISION_END_ID, IMAGE_PAD_ID, VIDEO_PAD_ID, UNK_ID = range(8)
# Case-sensitive answer words, matched before lower-casing (the teacher's loss reads "Yes").
ANSWER_TOKENS = ["Yes", "No"]

BASE_WORDS = """
system user assistant seconds
does do did is are was were has have can will the a an of to in on at by from with without and or not no
yes video show shows end final first last frame frames start beginning whole time throughout during after
before while every each all any some one two three four five six seven eight nine ten exactly only same
other stay stays keep keeps remain remains change changes move moves moved moving reach reaches reached
cross crosses touch touches enter enters leave leaves avoid avoids visit visits push pushes pull turn
turns toggle toggles switch light lights on off open closed agent target goal cell cells grid row column
square circle triangle diamond star cross ball box block marker markers object objects shape shapes wall
walls path corridor exit forbidden blocked empty free red green blue yellow orange purple pink white black
gray grey brown cyan magenta colour color colours colors left right up down top bottom middle center
centre corner edge north south east west above below next adjacent near far between inside outside onto
into over under step steps position positions matching match matches its their it they them
there this that these those what which where when how many more less than still intact visible vanish
vanishes disappear disappears appear appears split splits jump jumps duplicate duplicating smooth smoothly
continuous continuously process question questions task rule rules true false
""".split()
PUNCTUATION = list("{}[]:,\".?!;()'<>-_/*+=#")
DIGITS = list("0123456789")


def vocabulary() -> list[str]:
    """Every word the micro teacher knows (lower-case), deterministic."""
    words = set(BASE_WORDS)
    texts = [build_synthesis_prompt("x", has_image=True, strict=True), *fallback_queries("x", 3).all]
    for text in texts:  # the teacher should read its own instructions and fallback questions
        words.update(w for w, _ in pre_tokenizers.Whitespace().pre_tokenize_str(text.lower()) if w.isalpha())
    words.update(bench_vocabulary())  # every word a micro task prompt can contain
    return sorted(w for w in words if w not in PUNCTUATION and w not in DIGITS)


CHAT_TEMPLATE = (  # Qwen's ChatML layout; no default system turn
    "{% for message in messages %}<|im_start|>{{ message.role }}\n"
    "{% if message.content is string %}{{ message.content }}{% else %}{% for item in message.content %}"
    "{% if item.type == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif item.type == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif item.type == 'text' %}{{ item.text }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tokenizer(words: list[str] | None = None) -> PreTrainedTokenizerFast:
    """Word-level tokenizer: lower-cased words, single-character punctuation and digits, Qwen's special tokens."""
    words = vocabulary() if words is None else words
    vocab = {tok: i for i, tok in enumerate([*SPECIAL_TOKENS, *ANSWER_TOKENS, *PUNCTUATION, *DIGITS, *words])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Whitespace(),
        pre_tokenizers.Punctuation("isolated"),
        pre_tokenizers.Digits(individual_digits=True),
    ])
    backend.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="<|endoftext|>", eos_token="<|im_end|>",
        additional_special_tokens=SPECIAL_TOKENS[1:7], chat_template=CHAT_TEMPLATE, padding_side="left",
    )
    # "Yes"/"No" are matched as written, before lower-casing, and are not special (decode keeps them).
    tokenizer.add_tokens([AddedToken(tok, normalized=False, single_word=True) for tok in ANSWER_TOKENS])
    return tokenizer


@dataclass(frozen=True)
class TeacherSize:
    text_width: int
    text_layers: int
    vision_width: int
    vision_depth: int


# "micro" is the shipped teacher's (0.55M parameters); "small" is twice as wide (2.0M: more capacity for robustness).
SIZES = {"micro": TeacherSize(96, 3, 64, 2), "small": TeacherSize(192, 3, 128, 2)}


def micro_config(vocab_size: int, size: str = "micro") -> Qwen3VLConfig:
    """A Qwen3-VL small enough to train on a CPU, shaped for 32x32 micro frames."""
    if size not in SIZES:
        raise ValueError(f"unknown micro teacher size {size!r}; choose one of {sorted(SIZES)}")
    dims = SIZES[size]
    head_dim = 16
    return Qwen3VLConfig(
        text_config=dict(
            vocab_size=vocab_size, hidden_size=dims.text_width, intermediate_size=2 * dims.text_width,
            num_hidden_layers=dims.text_layers, num_attention_heads=dims.text_width // head_dim,
            num_key_value_heads=2, head_dim=head_dim, max_position_embeddings=2048,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 2, 2],
                             "mrope_interleaved": True},
            pad_token_id=PAD_ID, bos_token_id=IM_START_ID, eos_token_id=IM_END_ID, attention_dropout=0.0,
        ),
        vision_config=dict(
            depth=dims.vision_depth, hidden_size=dims.vision_width, intermediate_size=2 * dims.vision_width,
            num_heads=dims.vision_width // head_dim, in_channels=3, patch_size=8, spatial_merge_size=2,
            temporal_patch_size=2, out_hidden_size=dims.text_width, num_position_embeddings=16,
            deepstack_visual_indexes=[dims.vision_depth - 1], hidden_act="gelu_pytorch_tanh",
        ),
        image_token_id=IMAGE_PAD_ID, video_token_id=VIDEO_PAD_ID, vision_start_token_id=VISION_START_ID,
        vision_end_token_id=VISION_END_ID, tie_word_embeddings=True,
    )


# Preprocessing files in the official format: 32x32 frames are never resized (factor 16), images
# between 16x16 and 64x64 pixels keep their size, videos up to 64 frames keep theirs.
_PREPROCESSOR = {"patch_size": 8, "temporal_patch_size": 2, "merge_size": 2,
                 "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
IMAGE_PIXELS = {"shortest_edge": 16 * 16, "longest_edge": 64 * 64}
VIDEO_PIXELS = {"shortest_edge": 2 * 16 * 16, "longest_edge": 64 * 32 * 32}


def build_micro_teacher(out_dir: Path | str = DEFAULT_OUT, *, seed: int = 0, size: str = "micro") -> Path:
    """Write a seeded random micro teacher of ``size`` (model, tokenizer, preprocessing configs) to ``out_dir``."""
    out_dir = Path(out_dir)
    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(micro_config(len(tokenizer), size)).eval()
    model.generation_config = GenerationConfig(eos_token_id=[IM_END_ID, PAD_ID], pad_token_id=PAD_ID, do_sample=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    for name, size in (("preprocessor_config.json", IMAGE_PIXELS), ("video_preprocessor_config.json", VIDEO_PIXELS)):
        (out_dir / name).write_text(json.dumps({**_PREPROCESSOR, "size": size}, indent=2) + "\n")
    return out_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", choices=sorted(SIZES), default="micro")
    args = parser.parse_args()
    path = build_micro_teacher(args.out, seed=args.seed, size=args.size)
    size = sum(f.stat().st_size for f in path.iterdir()) / 2**20
    print(f"micro teacher written to {path} ({size:.2f} MiB)")


if __name__ == "__main__":
    main()
