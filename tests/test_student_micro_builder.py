"""The micro student builder: deterministic, in diffusers' WanPipeline format, shaped for the micro world."""

from __future__ import annotations

import torch
from diffusers import WanPipeline
from safetensors.torch import load_file

from benchmarks.micro import tokenize, vocabulary
from lab.micro.weights_student import DEFAULT_OUT, build_micro_student, build_tokenizer

WEIGHT_FILES = [
    "transformer/diffusion_pytorch_model.safetensors",
    "vae/diffusion_pytorch_model.safetensors",
    "text_encoder/model.safetensors",
]


def _tensors(root):
    return {f"{f}:{k}": v for f in WEIGHT_FILES for k, v in load_file(root / f).items()}


def test_builder_is_deterministic_per_seed(tmp_path):
    a = _tensors(build_micro_student(tmp_path / "a", seed=0))
    b = _tensors(build_micro_student(tmp_path / "b", seed=0))
    c = _tensors(build_micro_student(tmp_path / "c", seed=1))
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_shipped_weights_load_as_a_wan_pipeline_with_micro_shapes():
    weights = DEFAULT_OUT.parent  # student (with its light decoder) and teacher: issue #4 aims at <= 20 MB
    assert sum(f.stat().st_size for f in weights.rglob("*") if f.is_file()) < 20 * 10**6
    pipe = WanPipeline.from_pretrained(DEFAULT_OUT)
    assert pipe.config.expand_timesteps
    assert pipe.transformer.config.in_channels == pipe.vae.config.z_dim
    assert pipe.transformer.config.text_dim == pipe.text_encoder.config.d_model
    video = torch.rand(1, 3, 17, 32, 32) * 2 - 1
    with torch.no_grad():
        latent = pipe.vae.encode(video).latent_dist.mode()
    assert latent.shape == (1, pipe.vae.config.z_dim, 17, 4, 4)  # one latent pixel per 8x8 grid cell and frame


def test_micro_vae_is_frame_wise_so_single_frame_training_is_exact():
    vae = WanPipeline.from_pretrained(DEFAULT_OUT).vae
    video = torch.rand(1, 3, 17, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    changed = video.clone()
    changed[:, :, 6] = -changed[:, :, 6]
    with torch.no_grad():
        z, z_changed = (vae.encode(v).latent_dist.mode() for v in (video, changed))
        alone = vae.encode(video[:, :, 9:10]).latent_dist.mode()
        out, out_changed = vae.decode(z).sample, vae.decode(z_changed).sample
        out_alone = vae.decode(z[:, :, 9:10]).sample
    others = [t for t in range(17) if t != 6]
    assert not torch.allclose(z[:, :, 6], z_changed[:, :, 6])
    torch.testing.assert_close(z[:, :, others], z_changed[:, :, others], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[:, :, others], out_changed[:, :, others], atol=1e-5, rtol=0)
    torch.testing.assert_close(alone, z[:, :, 9:10], atol=1e-5, rtol=0)
    torch.testing.assert_close(out_alone, out[:, :, 9:10], atol=1e-5, rtol=0)


def test_word_level_tokenizer_splits_like_the_benchmark_and_maps_unknown_words():
    tokenizer = build_tokenizer(["move", "the", "red", "agent", ",", "!", "3"])
    text = "Move the RED agent3, zorg!"
    tokens = tokenizer.convert_ids_to_tokens(tokenizer(text).input_ids)
    assert tokens[:-1] == [t if t != "zorg" else "[UNK]" for t in tokenize(text)]
    assert tokens == ["move", "the", "red", "agent", "3", ",", "[UNK]", "!", "</s>"]
    assert tokenizer.pad_token_id == 0 and tokenizer.eos_token_id == 1


def test_shipped_tokenizer_knows_every_micro_word():
    tokenizer = WanPipeline.from_pretrained(DEFAULT_OUT).tokenizer
    ids = tokenizer(" ".join(vocabulary()), add_special_tokens=False).input_ids
    assert len(ids) == len(vocabulary()) and tokenizer.unk_token_id not in ids
