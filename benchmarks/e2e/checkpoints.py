"""Random-weight checkpoints in the real on-disk layouts, from the published configurations (hyper-parameters
as facts; no file of the releases is copied): what ``student=fastwan22_ti2v_5b`` / ``wan22_ti2v_5b``,
``student.light_decoder`` and ``teacher=qwen3_vl_4b`` load with only their paths overridden.

    python -m benchmarks.e2e.checkpoints --out DIR [--tiny] [--only fastwan,wan,taehv,qwen] [--device cuda]
    (scripts/make_random_checkpoints.py is the same command)

Writes under ``DIR``:
- ``Wan2.2-TI2V-5B-Diffusers/`` and ``FastWan2.2-TI2V-5B-FullAttn-Diffusers/``: diffusers folders
  (``model_index.json``, ``transformer/`` bf16, ``vae/`` fp32, ``text_encoder/`` bf16, ``tokenizer/``,
  ``scheduler/``). The 5B DiT and the Wan2.2 VAE are at their real sizes. The UMT5-XXL text encoder has its
  real width (d_model 4096, 64 heads, d_ff 10240) and vocabulary (256,384) but ONE layer instead of 24: the
  prompt is encoded once per instance, off every loop, and 24 layers would add 9 GB to write and load.
  The tokenizer is a locally built BPE stand-in with T5's special ids (pad 0, eos 1, unk 2, a trailing
  ``</s>``), not UMT5's SentencePiece model. Scheduler: Wan2.2's UniPC with flow sigmas and shift 5 (both
  folders; FastWan is sampled by the student's DMD timesteps, which never read it).
- ``lighttaew2_2.safetensors``: a TAEHV light decoder in the upstream key layout (``decoder.<i>.*`` and
  ``encoder.<i>.*``; widths 256/128/64/64, 48 latent channels, patch 2, time upscale x4), bf16.
- ``Qwen3-VL-4B-Instruct/``: ``config.json`` (Qwen3-VL-4B's text and vision hyper-parameters, its token ids),
  bf16 safetensors shards, ``generation_config.json``, a byte-level BPE tokenizer built locally whose special
  tokens sit at Qwen's ids (``<|endoftext|>`` 151643, ``<|im_start|>`` 151644, ... ``<|video_pad|>`` 151656;
  ids below 151643 not learned from the small corpus are never-produced fillers), a ChatML chat template of
  the same structure as Qwen3-VL's (system turn, image/video placeholders wrapped in vision start/end), and
  ``preprocessor_config.json`` / ``video_preprocessor_config.json`` with the release's pixel budgets.
- ``README.md``: what was written, and what differs from the releases.

``--tiny`` writes the same layouts at tiny widths (the DiT keeps its 30 blocks, so the shipped
``uncheckpointed_blocks: 20`` applies; everything else shrinks) for CPU tests. Weights are random (PyTorch's
default initialisation, finite, of sane scale): speed and memory do not depend on them; outputs mean nothing.
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

FASTWAN_DIR = "FastWan2.2-TI2V-5B-FullAttn-Diffusers"
WAN_DIR = "Wan2.2-TI2V-5B-Diffusers"
QWEN_DIR = "Qwen3-VL-4B-Instruct"
TAEHV_FILE = "lighttaew2_2.safetensors"
PARTS = ("fastwan", "wan", "taehv", "qwen")
MARKER = "random_checkpoints.json"  # written last: its presence means the set is complete

# Wan2.2-TI2V-5B transformer (config.json of the diffusers release).
WAN_TRANSFORMER = dict(patch_size=[1, 2, 2], num_attention_heads=24, attention_head_dim=128, in_channels=48,
                       out_channels=48, text_dim=4096, freq_dim=256, ffn_dim=14336, num_layers=30, cross_attn_norm=True,
                       qk_norm="rms_norm_across_heads", eps=1e-6, image_dim=None, added_kv_proj_dim=None,
                       rope_max_seq_len=1024, pos_embed_seq_len=None)
WAN_TRANSFORMER_TINY = dict(WAN_TRANSFORMER, num_attention_heads=2, attention_head_dim=8, text_dim=16, ffn_dim=32)
# Wan2.2 VAE (4x16x16 with the 2x2 patchify, 48 latent channels).
WAN_VAE = dict(base_dim=160, decoder_base_dim=256, z_dim=48, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
               attn_scales=[], temperal_downsample=[False, True, True], dropout=0.0, is_residual=True, in_channels=12,
               out_channels=12, patch_size=2, scale_factor_spatial=16, scale_factor_temporal=4)
WAN_VAE_TINY = dict(WAN_VAE, base_dim=4, decoder_base_dim=4, dim_mult=[1, 1, 1, 1], num_res_blocks=1)
# UMT5-XXL encoder at its real width and vocabulary; depth reduced (see the module docstring).
UMT5 = dict(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=1, num_heads=64,
            relative_attention_num_buckets=32, relative_attention_max_distance=128, dropout_rate=0.0,
            layer_norm_epsilon=1e-6, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
            pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
UMT5_REAL_LAYERS = 24
UMT5_TINY = dict(UMT5, vocab_size=512, d_model=16, d_kv=8, d_ff=32, num_heads=2)
# TAEHV decoder widths (taew2_2 / lighttaew2_2) and a tiny variant.
TAEHV_WIDTHS, TAEHV_WIDTHS_TINY = (256, 128, 64, 64), (8, 8, 4, 4)

# Qwen3-VL-4B-Instruct (config.json of the release: text and vision hyper-parameters, token ids).
QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                 "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
                 "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]
QWEN_FIRST_SPECIAL = 151643  # <|endoftext|>; the others follow in QWEN_SPECIALS' order
QWEN_TEXT = dict(vocab_size=151936, hidden_size=2560, intermediate_size=9728, num_hidden_layers=36,
                 num_attention_heads=32, num_key_value_heads=8, head_dim=128, hidden_act="silu", rms_norm_eps=1e-6,
                 max_position_embeddings=262144, attention_bias=False, attention_dropout=0.0, tie_word_embeddings=True,
                 rope_parameters={"rope_type": "default", "rope_theta": 5000000.0, "mrope_section": [24, 20, 20],
                                  "mrope_interleaved": True})
QWEN_VISION = dict(depth=24, hidden_size=1024, intermediate_size=4096, num_heads=16, in_channels=3, patch_size=16,
                   spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=2560, num_position_embeddings=2304,
                   deepstack_visual_indexes=[5, 11, 17], hidden_act="gelu_pytorch_tanh")
QWEN_TEXT_TINY = dict(QWEN_TEXT, vocab_size=512, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                      rope_parameters={"rope_type": "default", "rope_theta": 5000000.0, "mrope_section": [2, 1, 1],
                                       "mrope_interleaved": True})
QWEN_VISION_TINY = dict(QWEN_VISION, depth=2, hidden_size=32, intermediate_size=32, num_heads=4, out_hidden_size=32,
                        num_position_embeddings=16, deepstack_visual_indexes=[1])
QWEN_TINY_FIRST_SPECIAL = 448
# The release's processor files: pixel budgets (Qwen3-VL's video budget counts all frames together).
QWEN_IMAGE_PROCESSOR = {"size": {"longest_edge": 16777216, "shortest_edge": 65536}, "patch_size": 16,
                        "temporal_patch_size": 2, "merge_size": 2, "image_mean": [0.5, 0.5, 0.5],
                        "image_std": [0.5, 0.5, 0.5], "processor_class": "Qwen3VLProcessor",
                        "image_processor_type": "Qwen2VLImageProcessorFast"}
QWEN_VIDEO_PROCESSOR = {"size": {"longest_edge": 25165824, "shortest_edge": 4096}, "patch_size": 16,
                        "temporal_patch_size": 2, "merge_size": 2, "image_mean": [0.5, 0.5, 0.5],
                        "image_std": [0.5, 0.5, 0.5], "processor_class": "Qwen3VLProcessor",
                        "video_processor_type": "Qwen3VLVideoProcessor", "fps": 2, "min_frames": 4,
                        "max_frames": 768, "do_sample_frames": True}
# ChatML as Qwen3-VL's template lays it out (our own text): optional system turn, images/videos as
# <|vision_start|><|image_pad|><|vision_end|> / ...<|video_pad|>..., the assistant turn opened on request.
QWEN_CHAT_TEMPLATE = (
    "{%- set image_count = namespace(value=0) -%}{%- set video_count = namespace(value=0) -%}"
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message.role + '\\n' -}}"
    "{%- if message.content is string -%}{{ message.content }}"
    "{%- else -%}{%- for item in message.content -%}"
    "{%- if item.type == 'image' or 'image' in item -%}{%- set image_count.value = image_count.value + 1 -%}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif item.type == 'video' or 'video' in item -%}{%- set video_count.value = video_count.value + 1 -%}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{%- elif 'text' in item -%}{{ item.text }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)
# The text the local tokenizers learn their merges from (any text still encodes: byte-level / unknown -> unk).
CORPUS = """Yes No Yes No Yes. No. Answer with Yes or No. Does the video show the ball reaching the goal?
Is the object still visible at the end of the video? Does the square move to the right edge without changing
its colour? The agent moves along the path, avoids the walls and reaches the target cell. A ball rolls off the
table and falls to the floor. Ice melts in the sun. A chef serves sushi. Continue the colour pattern. Write one
goal question and up to three process questions about the task as JSON: {"goal": "...", "process": ["..."]}.
Rewrite the prompt as a detailed, step-by-step description of the video. Critique the two videos and write
edit instructions, then rewrite the prompt. The first frame, the last frame, every frame, the whole time.
"""


@contextmanager
def default_dtype(dtype: torch.dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _latent_stats(seed: int = 1) -> tuple[list[float], list[float]]:
    """Non-trivial per-channel latent mean/std (48): the raw light-decoder convention reads them."""
    g = torch.Generator().manual_seed(seed)
    return (0.2 * torch.randn(48, generator=g)).tolist(), (torch.rand(48, generator=g) + 0.4).tolist()


# ----------------------------------------------------------------------------- tokenizers
def _bpe(vocab_size: int, specials: list[str], byte_level: bool):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None if byte_level else specials[-1]))
    if byte_level:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[], show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    else:
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False)
    tok.train_from_iterator([CORPUS] * 4, trainer=trainer)
    return tok


def build_t5_tokenizer(max_len: int = 512):
    """A BPE stand-in for UMT5's tokenizer: T5's special ids (pad 0, eos 1, unk 2), ``</s>`` appended."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    tok = _bpe(400, ["<pad>", "</s>", "<unk>"], byte_level=False)
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   model_max_length=max_len)


def build_qwen_tokenizer(first_special: int):
    """Byte-level BPE (as Qwen's) with Qwen's special tokens at ids ``first_special``...; the ids between the
    learned vocabulary and ``first_special`` are fillers that no text produces."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    learned = _bpe(min(first_special, 400), [], byte_level=True)
    model = json.loads(learned.to_str())["model"]
    vocab: dict[str, int] = dict(model["vocab"])
    if len(vocab) > first_special:
        raise ValueError(f"learned vocabulary {len(vocab)} > first special id {first_special}")
    for i in range(len(vocab), first_special):
        vocab[f"<|filler_{i}|>"] = i
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in QWEN_SPECIALS])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|endoftext|>", eos_token="<|im_end|>",
                                   additional_special_tokens=QWEN_SPECIALS[1:], chat_template=QWEN_CHAT_TEMPLATE,
                                   model_max_length=262144, padding_side="left")
    for offset, name in enumerate(QWEN_SPECIALS):
        got = fast.convert_tokens_to_ids(name)
        if got != first_special + offset:
            raise AssertionError(f"{name} got id {got}, expected {first_special + offset}")
    return fast


# ----------------------------------------------------------------------------- writers
def write_wan(out: Path, *, tiny: bool, device: torch.device, fast: bool) -> dict[str, Any]:
    """A diffusers Wan2.2-TI2V-5B folder (``fast``: the FastWan2.2 variant's, same layout)."""
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    with torch.device(device), default_dtype(torch.bfloat16):
        transformer = WanTransformer3DModel(**(WAN_TRANSFORMER_TINY if tiny else WAN_TRANSFORMER))
    transformer.save_pretrained(out / "transformer", max_shard_size="5GB")  # bf16: built under that default
    del transformer
    mean, std = _latent_stats()
    with torch.device(device):
        vae = AutoencoderKLWan(**(WAN_VAE_TINY if tiny else WAN_VAE), latents_mean=mean, latents_std=std)
    vae.save_pretrained(out / "vae")
    del vae
    with torch.device(device), default_dtype(torch.bfloat16):
        text_encoder = UMT5EncoderModel(UMT5Config(**(UMT5_TINY if tiny else UMT5)))
    text_encoder.to(torch.bfloat16).save_pretrained(out / "text_encoder", max_shard_size="5GB")
    del text_encoder
    build_t5_tokenizer().save_pretrained(out / "tokenizer")
    # Wan2.2's scheduler: UniPC on flow sigmas, flow prediction, shift 5, 1000 training steps.
    UniPCMultistepScheduler(num_train_timesteps=1000, prediction_type="flow_prediction", use_flow_sigmas=True,
                            flow_shift=5.0, solver_order=2, solver_type="bh2", predict_x0=True,
                            lower_order_final=True, final_sigmas_type="zero").save_pretrained(out / "scheduler")
    import diffusers

    index = {"_class_name": "WanPipeline", "_diffusers_version": diffusers.__version__,
             "boundary_ratio": None, "expand_timesteps": True,
             "scheduler": ["diffusers", "UniPCMultistepScheduler"], "text_encoder": ["transformers", "UMT5EncoderModel"],
             "tokenizer": ["transformers", "PreTrainedTokenizerFast"], "transformer": ["diffusers", "WanTransformer3DModel"],
             "transformer_2": [None, None], "vae": ["diffusers", "AutoencoderKLWan"]}
    (out / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    return {"transformer": json.loads((out / "transformer" / "config.json").read_text()),
            "text_encoder_layers": (UMT5_TINY if tiny else UMT5)["num_layers"], "text_encoder_real_layers": UMT5_REAL_LAYERS}


def write_taehv(path: Path, *, tiny: bool) -> dict[str, Any]:
    """A TAEHV checkpoint in the upstream key layout (encoder and decoder), bf16."""
    from harness.students.taehv import TAEHVDecoder

    torch.manual_seed(0)
    widths = TAEHV_WIDTHS_TINY if tiny else TAEHV_WIDTHS
    state = {k: v.to(torch.bfloat16) for k, v in TAEHVDecoder(latent_channels=48, patch_size=2, channels=widths)
             .state_dict().items()}
    # The encoder half the upstream files carry (the harness ignores it): 2x2-patchified RGB in, 48 channels out.
    enc = torch.nn.Sequential(torch.nn.Conv2d(12, widths[3], 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(widths[3], 48, 3, padding=1))
    state |= {f"encoder.{k}": v.to(torch.bfloat16) for k, v in enc.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return {"widths": list(widths), "keys": len(state)}


def write_qwen(out: Path, *, tiny: bool, device: torch.device) -> dict[str, Any]:
    from transformers import GenerationConfig, Qwen3VLConfig, Qwen3VLForConditionalGeneration

    first = QWEN_TINY_FIRST_SPECIAL if tiny else QWEN_FIRST_SPECIAL
    ids = {name: first + i for i, name in enumerate(QWEN_SPECIALS)}
    tokenizer = build_qwen_tokenizer(first)
    text = dict(QWEN_TEXT_TINY if tiny else QWEN_TEXT, bos_token_id=ids["<|endoftext|>"],
                eos_token_id=ids["<|im_end|>"], pad_token_id=None)
    config = Qwen3VLConfig(text_config=text, vision_config=QWEN_VISION_TINY if tiny else QWEN_VISION,
                           image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                           vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
                           tie_word_embeddings=True)
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen3VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    model.generation_config = GenerationConfig(
        bos_token_id=ids["<|endoftext|>"], pad_token_id=ids["<|endoftext|>"],
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]], do_sample=True, top_k=20, top_p=0.8, temperature=0.7)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, max_shard_size="5GB")
    del model
    tokenizer.save_pretrained(out)
    (out / "chat_template.json").write_text(json.dumps({"chat_template": QWEN_CHAT_TEMPLATE}, indent=2) + "\n")
    image, video = dict(QWEN_IMAGE_PROCESSOR), dict(QWEN_VIDEO_PROCESSOR)
    if tiny:  # tiny frames (32-64 px) keep their size
        image["size"] = {"longest_edge": 128 * 128, "shortest_edge": 32 * 32}
        video["size"] = {"longest_edge": 64 * 64 * 64, "shortest_edge": 2 * 32 * 32}
    (out / "preprocessor_config.json").write_text(json.dumps(image, indent=2) + "\n")
    (out / "video_preprocessor_config.json").write_text(json.dumps(video, indent=2) + "\n")
    return {"text_config": {k: config.text_config.to_dict()[k] for k in ("hidden_size", "num_hidden_layers",
                                                                          "vocab_size", "intermediate_size")},
            "vision_config": {k: config.vision_config.to_dict()[k] for k in ("depth", "hidden_size", "out_hidden_size")},
            "special_ids": ids}


def write_all(out: Path, *, tiny: bool, parts=PARTS, device: str | None = None) -> dict[str, Any]:
    """Write ``parts`` under ``out``; returns (and saves as ``random_checkpoints.json``) what was written."""
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise SystemExit(f"--only: unknown parts {sorted(unknown)}; choose from {PARTS}")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).unlink(missing_ok=True)
    written: dict[str, Any] = {"tiny": tiny, "device": str(dev), "paths": {}, "configs": {}, "seconds": {}}
    jobs = {"fastwan": lambda: write_wan(out / FASTWAN_DIR, tiny=tiny, device=dev, fast=True),
            "wan": lambda: write_wan(out / WAN_DIR, tiny=tiny, device=dev, fast=False),
            "taehv": lambda: write_taehv(out / TAEHV_FILE, tiny=tiny),
            "qwen": lambda: write_qwen(out / QWEN_DIR, tiny=tiny, device=dev)}
    names = {"fastwan": FASTWAN_DIR, "wan": WAN_DIR, "taehv": TAEHV_FILE, "qwen": QWEN_DIR}
    for part in PARTS:
        if part not in parts:
            continue
        t0 = time.perf_counter()
        written["configs"][part] = jobs[part]()
        written["paths"][part] = str(out / names[part])
        written["seconds"][part] = round(time.perf_counter() - t0, 1)
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        print(f"wrote {out / names[part]} in {written['seconds'][part]} s", flush=True)
    written["bytes"] = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    (out / "README.md").write_text(readme(written))
    (out / MARKER).write_text(json.dumps(written, indent=1) + "\n")
    return written


def readme(written: dict[str, Any]) -> str:
    size = "TINY widths (CPU tests)" if written["tiny"] else "the real sizes"
    return (f"# Random-weight checkpoints ({size})\n\nWritten by `python -m benchmarks.e2e.checkpoints` "
            "(vlmteach-harness) from the published configurations; random weights, meaningless outputs.\n\n"
            f"Parts: {', '.join(written['paths'])}.\n\n"
            f"- UMT5 text encoder: real width and vocabulary, {UMT5['num_layers']} layer instead of "
            f"{UMT5_REAL_LAYERS} (reduced depth).\n"
            "- Tokenizers: built locally (a BPE stand-in with T5's special ids for Wan; byte-level BPE with Qwen's "
            "special tokens at Qwen's ids and a ChatML template of Qwen3-VL's structure), not the released ones.\n"
            "- Wan VAE latent mean/std: random per-channel values, not the release's.\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.e2e.checkpoints", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tiny", action="store_true", help="the same layouts at tiny widths (CPU tests)")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of {PARTS}")
    parser.add_argument("--device", default=None, help="where to initialise (default: cuda if present)")
    args = parser.parse_args(argv)
    written = write_all(args.out, tiny=args.tiny, parts=tuple(p for p in args.only.split(",") if p), device=args.device)
    print(f"{written['bytes'] / 2**30:.2f} GiB in {args.out}; UMT5 text encoder at its real width with "
          f"{UMT5['num_layers']} of {UMT5_REAL_LAYERS} layers (reduced depth); see {args.out / 'README.md'}")


if __name__ == "__main__":
    main()
