"""A tiny random InternVL3-style checkpoint (real classes) with the micro word-level tokenizer plus
InternVL's image tokens, an InternVL-format chat template and an official image-processor config."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import AddedToken
from transformers import InternVLConfig, InternVLForConditionalGeneration
from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

from lab.micro import weights_teacher as micro

IMAGE_TOKENS = ["<img>", "</img>", "<IMG_CONTEXT>", "<video>"]
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
TILE = 56  # patch 14 -> 4x4 patches -> pixel shuffle 0.5 -> 4 LLM tokens per frame
# ChatML as the InternVL3 -hf checkpoints lay it out: an image is "<IMG_CONTEXT>\n", a video "<video>\n".
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message.role }}\n"
    "{% if message.content is string %}{{ message.content }}{% else %}{% for item in message.content %}"
    "{% if item.type == 'image' %}<IMG_CONTEXT>\n{% elif item.type == 'video' %}<video>\n"
    "{% elif item.type == 'text' %}{{ item.text }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def write_tiny_internvl(out: Path, *, seed: int = 0) -> Path:
    tokenizer = micro.build_tokenizer()
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in IMAGE_TOKENS], special_tokens=True)
    tokenizer.chat_template = CHAT_TEMPLATE
    config = InternVLConfig(
        vision_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                           image_size=TILE, patch_size=14),
        text_config=dict(model_type="qwen2", vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         pad_token_id=micro.PAD_ID, bos_token_id=micro.IM_START_ID, eos_token_id=micro.IM_END_ID),
        image_token_id=tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>"), image_seq_length=(TILE // 14 // 2) ** 2,
        downsample_ratio=0.5,
    )
    torch.manual_seed(seed)
    InternVLForConditionalGeneration(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    GotOcr2ImageProcessorPil(size={"height": TILE, "width": TILE}, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD,
                             max_patches=4).save_pretrained(out)
    return out
