"""Build the random-initialised micro student: a tiny Wan (transformer, VAE, UMT5 text encoder, word-level
tokenizer, flow scheduler) saved as a diffusers ``WanPipeline`` folder, the same format as Wan2.2-TI2V-5B.

    python -m lab.micro.weights_student [--out DIR] [--seed N]

Shapes fit the micro world (32x32 RGB, 17 frames, 4x4 grid of 8x8 cells): the VAE compresses 8x in space and
not in time, so latents are [1, 16, 17, 4, 4] (one latent pixel per grid cell and frame), and the transformer
uses 1x1x1 patches, so each cell of each latent frame is one token.

Why no temporal compression (Wan2.2's VAE has 4x): the micro world changes a cell almost every frame, and a
4x-temporal micro VAE could not learn to read those changes back in the time a CPU or one short GPU run
has (docs/micro-world.md). The micro VAE is made exactly frame-wise: the past taps of every causal
convolution are zero, so each frame is encoded and decoded alone and it trains on single frames.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors
from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d
from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

from benchmarks.micro import vocabulary
from lab.micro import WEIGHTS

DEFAULT_OUT = WEIGHTS / "student"
LATENT_CHANNELS = 16
TEXT_DIM = 32
MAX_TEXT_LEN = 64  # the longest micro prompt is 32 tokens + </s>
SPECIAL_TOKENS = ["<pad>", "</s>", "[UNK]"]  # T5 order: pad 0, eos 1, unk 2

# Small but able to learn the world's plans: 6 blocks of width 128 (8 heads x 16), text width 32. (The first
# shipped student, 4 blocks of width 64, kept hedging between paths and recolouring movers.)
TRANSFORMER_CONFIG = dict(
    patch_size=(1, 1, 1),
    num_attention_heads=8,
    attention_head_dim=16,
    in_channels=LATENT_CHANNELS,
    out_channels=LATENT_CHANNELS,
    text_dim=TEXT_DIM,
    freq_dim=256,
    ffn_dim=512,
    num_layers=6,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    eps=1e-6,
)
# Wan2.1-style VAE: three spatial downsamples (8x), none in time; mean 0 / std 1 until trained.
VAE_CONFIG = dict(
    base_dim=16,
    z_dim=LATENT_CHANNELS,
    dim_mult=[1, 2, 2, 2],
    num_res_blocks=1,
    temperal_downsample=[False, False, False],
    latents_mean=[0.0] * LATENT_CHANNELS,
    latents_std=[1.0] * LATENT_CHANNELS,
    scale_factor_spatial=8,
    scale_factor_temporal=1,
)


def build_vae() -> AutoencoderKLWan:
    """The micro VAE with every causal convolution's past taps at zero: a frame-wise autoencoder.

    A frame's output then depends on that frame alone (the causal padding and the chunk cache only ever
    meet zero weights), and the past taps get no gradient from single-frame training, so they stay zero.
    """
    vae = AutoencoderKLWan(**VAE_CONFIG)
    with torch.no_grad():
        for module in vae.modules():
            if isinstance(module, WanCausalConv3d) and module.weight.shape[2] > 1:
                module.weight[:, :, :-1] = 0.0
    return vae


def build_tokenizer(words: list[str]) -> PreTrainedTokenizerFast:
    """Word-level tokenizer splitting like ``benchmarks.micro.tokenize`` (lowercase letter runs; every other
    non-space character alone), unknown words -> [UNK], a T5-style trailing </s>."""
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + [w for w in words if w not in SPECIAL_TOKENS])}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex("[a-z]+|[^a-z]"), behavior="isolated")]
    )
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", vocab["</s>"])])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="[UNK]",
        model_max_length=MAX_TEXT_LEN,
    )


def build_text_encoder(vocab_size: int) -> UMT5EncoderModel:
    config = UMT5Config(
        vocab_size=vocab_size,
        d_model=TEXT_DIM,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=MAX_TEXT_LEN,
        dropout_rate=0.0,
        feed_forward_proj="gated-gelu",
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    return UMT5EncoderModel(config).eval()


def build_micro_student(out_dir: Path = DEFAULT_OUT, *, seed: int = 0) -> Path:
    """Write the random-initialised micro student to ``out_dir`` (deterministic for a given seed)."""
    tokenizer = build_tokenizer(vocabulary())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        pipeline = WanPipeline(
            tokenizer=tokenizer,
            text_encoder=build_text_encoder(len(tokenizer)),
            transformer=WanTransformer3DModel(**TRANSFORMER_CONFIG),
            vae=build_vae(),
            scheduler=UniPCMultistepScheduler(
                prediction_type="flow_prediction", use_flow_sigmas=True, num_train_timesteps=1000, flow_shift=5.0
            ),
            transformer_2=None,
            boundary_ratio=None,
            expand_timesteps=True,  # Wan2.2-TI2V conditioning: per-token timesteps, clean first latent frame
        )
    pipeline.save_pretrained(out_dir, safe_serialization=True)
    return Path(out_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(build_micro_student(args.out, seed=args.seed))


if __name__ == "__main__":
    main()
