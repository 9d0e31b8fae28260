"""Tiny random Qwen3-VL and Qwen2.5-VL checkpoints (real classes, a few small layers) sharing the
micro word-level tokenizer, written in transformers format for ``QwenVLTeacher.from_pretrained``."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import (
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
)

from lab.micro import weights_teacher as micro

TOKEN_IDS = dict(image_token_id=micro.IMAGE_PAD_ID, video_token_id=micro.VIDEO_PAD_ID,
                 vision_start_token_id=micro.VISION_START_ID, vision_end_token_id=micro.VISION_END_ID)
TEXT_IDS = dict(pad_token_id=micro.PAD_ID, bos_token_id=micro.IM_START_ID, eos_token_id=micro.IM_END_ID)


def qwen3_config(vocab_size: int, text_layers: int = 2) -> Qwen3VLConfig:
    return Qwen3VLConfig(
        text_config=dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=37, num_hidden_layers=text_layers,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                         rope_parameters={"rope_type": "default", "mrope_section": [2, 1, 1],
                                          "mrope_interleaved": True},
                         **TEXT_IDS),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=32, num_heads=4, patch_size=16,
                           spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=32,
                           num_position_embeddings=16, deepstack_visual_indexes=[1], hidden_act="gelu_pytorch_tanh"),
        **TOKEN_IDS,
    )


def qwen25_config(vocab_size: int, text_layers: int = 2) -> Qwen2_5_VLConfig:
    return Qwen2_5_VLConfig(
        text_config=dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=37, num_hidden_layers=text_layers,
                         num_attention_heads=4, num_key_value_heads=2,
                         rope_parameters={"type": "mrope", "mrope_section": [2, 1, 1]}, **TEXT_IDS),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=32, num_heads=4, out_hidden_size=32,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56,
                           fullatt_block_indexes=[1], tokens_per_second=2, hidden_act="silu"),
        **TOKEN_IDS,
    )


def write_tiny_teacher(out: Path, family: str, *, seed: int = 0, preprocessor: dict | None = None,
                       text_layers: int = 2) -> Path:
    """Save a tiny ``family`` ("qwen3_vl" | "qwen2_5_vl") checkpoint with the micro tokenizer to ``out``."""
    tokenizer = micro.build_tokenizer()
    config = (qwen3_config if family == "qwen3_vl" else qwen25_config)(len(tokenizer), text_layers)
    model_class = Qwen3VLForConditionalGeneration if family == "qwen3_vl" else Qwen2_5_VLForConditionalGeneration
    torch.manual_seed(seed)
    model_class(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    if preprocessor is not None:
        (out / "video_preprocessor_config.json").write_text(json.dumps(preprocessor))
    return out
