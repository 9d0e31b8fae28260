"""The student configs instantiate through Hydra; the real-model ones fail offline with a download hint."""

from __future__ import annotations

import inspect
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from benchmarks.micro import MicroBenchmark, render_solution, score_clip
import harness.config  # noqa: F401  (registers the run schema that conf/config.yaml composes)
from harness.frames import frames_to_clip
from harness.students.lora import LoraSpec
from harness.students.patch_linear import PatchLinearDecoder
from harness.students.wan import WanStudent
from harness.types import UserError
from lab.micro.training.train_student import LATER_SIGMAS
from lab.micro.training.train_vae import encode_clips, normalise

CONF = Path(__file__).resolve().parents[1] / "conf" / "student"


def test_micro_config_builds_the_shipped_student():
    cfg = OmegaConf.load(CONF / "micro.yaml")
    student = instantiate(cfg, device="cpu")
    assert isinstance(student, WanStudent)
    # The later levels are the ones the micro student's later steps train on (train_student.LATER_SIGMAS).
    assert student.sampler == "dmd" and student.sigmas == [1.0, *LATER_SIGMAS]
    assert student.first_frame_fit == "crop"
    assert student.guidance_scale == 1.0 and student.lora_spec.rank == 16
    assert len(student.lora_parameters()) > 0
    # The loop decodes through the shipped patch-linear decoder, made for this VAE's latents: a rendered clip,
    # encoded by the VAE, comes back through it with the scorer's labels.
    assert isinstance(student.light_decoder.decoder, PatchLinearDecoder)
    instance = MicroBenchmark(set="dev").instances()[0]
    clip = render_solution(instance, "wrong_target")
    latents = normalise(student.vae, encode_clips(student.vae, torch.from_numpy(clip[None])))
    decoded = frames_to_clip(student.decode(latents, light=True))
    assert score_clip(instance, decoded).scores == score_clip(instance, clip).scores
    assert np.abs(decoded.astype(int) - clip).mean() < 3  # RGB units


@pytest.mark.parametrize(
    ("name", "hub_id", "sampler", "steps"),
    [
        ("wan22_ti2v_5b", "Wan-AI/Wan2.2-TI2V-5B-Diffusers", "scheduler", 50),
        ("fastwan22_ti2v_5b", "FastVideo/FastWan2.2-TI2V-5B-FullAttn-Diffusers", "dmd", 3),
    ],
)
def test_real_student_configs(name, hub_id, sampler, steps, tmp_path, monkeypatch):
    with initialize_config_dir(config_dir=str(CONF.parent), version_base="1.3"):  # a variant inherits its base
        cfg = compose(config_name="config", overrides=[f"student={name}"]).student
    assert (cfg.path, cfg.sampler, cfg.num_steps, cfg.dtype) == (hub_id, sampler, steps, "bfloat16")
    # The schedule the config asks for is valid (checked without loading 5B weights); the scheduler
    # sampler's comes from the checkpoint's scheduler/ folder.
    if sampler == "dmd":
        assert WanStudent._dmd_timesteps(cfg.dmd_timesteps, cfg.num_steps) == [1000, 757, 522]
    else:
        assert "dmd_timesteps" not in cfg and cfg.shift == 5.0 and cfg.guidance_scale == 5.0
    assert cfg.first_frame_fit == "crop"
    # Every other key reaches WanStudent (checked here because the 5B weights are not loaded below).
    accepted = set(inspect.signature(WanStudent.__init__).parameters) | {"_target_", "path", "dtype", "vae_dtype", "revision"}
    assert set(cfg) <= accepted, set(cfg) - accepted
    with initialize_config_dir(config_dir=str(CONF.parent), version_base="1.3"):
        fast = compose(config_name="config", overrides=[f"student={name}", "experiment=fast_h200"]).student
    assert set(fast) <= accepted and fast.fp8 and fast.uncheckpointed_blocks == 30
    assert LoraSpec(**fast.lora).compute_dtype == "bfloat16"
    assert cfg.compile and cfg.gradient_checkpointing and 0 < cfg.uncheckpointed_blocks < 30
    # Opt-in: they change the student's outputs (results/perf)
    assert cfg.fp8 is False and LoraSpec(**cfg.lora).compute_dtype == "float32"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(InstantiationException) as err:  # Hydra wraps the adapter's UserError
        instantiate(cfg, device="cpu")
    assert isinstance(err.value.__cause__, UserError)
    assert f"hf download {hub_id}" in str(err.value.__cause__)


def test_asking_for_a_gpu_without_one_is_a_clear_error(tmp_path):
    import torch

    from harness.loading import resolve_device
    from harness.types import UserError

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(UserError, match=r"student.device=cuda but no CUDA GPU is visible.*student.device=cpu"):
        resolve_device("cuda", config_key="student.device")
    assert resolve_device("auto").type == "cpu"
