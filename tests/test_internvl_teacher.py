"""InternVLTeacher on a tiny random InternVLForConditionalGeneration: preprocessing against the official
image processor, the prompt expansion against InternVLProcessor, the loss and its gradient, the shared
prefix against the batched reference, generation and loading errors."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from internvl_fixtures import IMAGENET_MEAN, IMAGENET_STD, TILE, write_tiny_internvl
from teacher_fixtures import write_tiny_teacher
from transformers import InternVLProcessor
from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

from harness.teachers.internvl import InternVLTeacher
from harness.types import Instance, UserError

QUESTIONS = ["Is the red agent on the green cell?", "Does the agent avoid the walls at all times?", "Is it whole?"]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return InternVLTeacher.from_pretrained(path=str(write_tiny_internvl(tmp_path_factory.mktemp("ivl"))),
                                           device="cpu")


def frames(seed=0, t=3, h=40, w=60):
    return torch.rand(t, 3, h, w, generator=torch.Generator().manual_seed(seed))


def smooth_frames(h: int, w: int, t: int = 2) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = []
    for k in range(t):
        base = np.stack([np.sin(xx / 9.0 + k), np.cos(yy / 7.0), np.sin((xx + yy) / 11.0)], -1) * 90 + 128
        noise = np.random.default_rng(k).normal(0, 8, base.shape)
        out.append(np.clip(base + noise, 0, 255).astype(np.uint8))
    return np.stack(out)


def test_frame_tiles_match_the_official_image_processor(teacher):
    # GotOcr2ImageProcessorPil is InternVL's image processor without torchvision; one tile per frame.
    official = GotOcr2ImageProcessorPil(size={"height": TILE, "width": TILE}, image_mean=IMAGENET_MEAN,
                                        image_std=IMAGENET_STD)
    assert teacher.frame_mean == tuple(IMAGENET_MEAN) and teacher.frame_std == tuple(IMAGENET_STD)
    for (h, w), max_step in (((TILE, TILE), 1e-5), ((150, 230), 6 / 255)):
        video = smooth_frames(h, w)
        ref = official(images=list(video), crop_to_patches=False, return_tensors="pt")["pixel_values"]
        ours = teacher.frame_tiles(torch.from_numpy(video).permute(0, 3, 1, 2).float() / 255.0)
        assert ours.shape == ref.shape == (2, 3, TILE, TILE)
        # PIL resizes in uint8 (rounded), torch in float: a few uint8 steps apart when resizing.
        diff = (ours - ref).abs() * min(IMAGENET_STD)
        assert diff.max() <= max_step and diff.mean() < max(max_step, 1e-5) / 2


def test_frame_tiles_match_the_official_video_processor(teacher):
    pytest.importorskip("torchvision", reason="transformers' InternVL video processor needs torchvision")
    from transformers.models.internvl.video_processing_internvl import InternVLVideoProcessor  # imports torchvision

    official = InternVLVideoProcessor(size={"height": TILE, "width": TILE}, image_mean=IMAGENET_MEAN,
                                      image_std=IMAGENET_STD, do_sample_frames=False)
    video = smooth_frames(150, 230)
    ref = official(videos=[video], return_tensors="pt")["pixel_values_videos"][0]
    ours = teacher.frame_tiles(torch.from_numpy(video).permute(0, 3, 1, 2).float() / 255.0)
    assert ours.shape == ref.shape == (2, 3, TILE, TILE)
    diff = (ours - ref).abs() * min(IMAGENET_STD)  # in [0, 1] pixel units
    assert diff.max() <= 6 / 255 and diff.mean() < 3 / 255


def test_video_placeholder_matches_internvl_processor(teacher):
    tok = teacher.tokens
    stub = SimpleNamespace(start_image_token=tok["start_image_token"], end_image_token=tok["end_image_token"],
                           image_token=tok["context_image_token"], image_seq_length=teacher.tokens_per_tile)
    official = InternVLProcessor.replace_video_token(stub, {"pixel_values_videos": [torch.zeros(3, 1)]}, 0)
    assert teacher.video_placeholder(3) == official
    assert official.count(tok["context_image_token"]) == 3 * teacher.tokens_per_tile


def test_yes_nll_is_differentiable_and_reads_video_and_question(teacher):
    x = frames().requires_grad_(True)
    nll = teacher.yes_nll(x, QUESTIONS)
    assert nll.shape == (3,) and nll.dtype == torch.float32 and torch.isfinite(nll).all() and (nll > 0).all()
    nll.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with torch.no_grad():
        other = teacher.yes_nll(frames(1), QUESTIONS)
    assert (nll.detach() - other).abs().min() > 1e-7
    assert len({round(v, 6) for v in nll.tolist()}) == 3


def test_yes_nll_equals_a_plain_forward_with_pixel_values(teacher):
    """Against the model's own path: pixel_values in, the official placeholder text, manual log-softmax."""
    x = frames()
    text = teacher.chat_text([{"type": "video"}, {"type": "text", "text": QUESTIONS[1] + teacher.question_suffix}])
    text = text.replace(teacher.tokens["video_token"], teacher.video_placeholder(3), 1)
    ids = torch.tensor([teacher.tokenizer(text)["input_ids"]])
    with torch.no_grad():
        logits = teacher.model(input_ids=ids, pixel_values=teacher.frame_tiles(x)).logits
        expected = -torch.log_softmax(logits[0, -1].float(), -1)[teacher.yes_ids[0]]
        assert teacher.yes_nll(x, QUESTIONS[1:2])[0] == pytest.approx(expected.item(), rel=1e-5)


def loss_and_grad(teacher, shared: bool):
    teacher.shared_prefix = shared
    x = frames().requires_grad_(True)
    nll = teacher.yes_nll(x, QUESTIONS)
    (grad,) = torch.autograd.grad((nll * torch.tensor([0.5, 0.25, 0.25])).sum(), x)
    teacher.shared_prefix = True
    return nll.detach(), grad


def assert_same_loss_and_grad(got, ref):
    torch.testing.assert_close(got[0], ref[0], atol=1e-5, rtol=1e-5)
    scale = float(ref[1].abs().max())
    assert scale > 0
    torch.testing.assert_close(got[1], ref[1], atol=1e-5 * scale, rtol=1e-3)


def test_shared_prefix_equals_batched_and_single(teacher):
    batched = loss_and_grad(teacher, shared=False)
    assert_same_loss_and_grad(loss_and_grad(teacher, shared=True), batched)
    with torch.no_grad():
        single = torch.cat([teacher.yes_nll(frames(), [q]) for q in QUESTIONS])
    torch.testing.assert_close(single, batched[0], atol=1e-5, rtol=1e-5)


def test_shared_prefix_under_checkpointing_and_compiled_layers(tmp_path):
    from torch._dynamo.testing import CompileCounterWithBackend

    from harness.teachers.shared_prefix import compile_decoder_layers

    ckpt = InternVLTeacher.from_pretrained(path=str(write_tiny_internvl(tmp_path)), device="cpu",
                                           gradient_checkpointing=True)
    assert ckpt.model.training and ckpt.model.is_activation_checkpointing
    batched = loss_and_grad(ckpt, shared=False)
    assert_same_loss_and_grad(loss_and_grad(ckpt, shared=True), batched)
    counter = CompileCounterWithBackend("aot_eager")
    compile_decoder_layers(ckpt.model.model.language_model.layers, backend=counter)
    assert_same_loss_and_grad(loss_and_grad(ckpt, shared=True), batched)
    assert counter.frame_count > 0


def test_generation_with_an_image_and_query_synthesis_fallback(teacher):
    image = smooth_frames(30, 70, t=1)[0]
    reply = teacher.generate("is the agent red ?", [image], max_new_tokens=4)
    assert isinstance(reply, str)
    teacher.max_new_tokens, teacher.synthesis_retries = 6, 0
    instance = Instance(id="a", bench="micro", task="t", category="c", split="id", prompt="Move the agent.",
                        num_frames=9, height=32, width=32, fps=8, first_frame=image)
    queries = teacher.synthesize_queries(instance, max_process=2)
    # A random model writes no JSON: the deterministic fallback is used and marked, with the raw reply kept.
    assert queries.fallback and queries.goal.endswith("?") and len(queries.process) == 2
    with pytest.raises(ValueError, match="uint8"):
        teacher.generate("hi", [image.astype(np.float32)])


def test_loading_errors_are_actionable(tmp_path):
    qwen = write_tiny_teacher(tmp_path / "qwen", "qwen3_vl")
    with pytest.raises(UserError, match="not 'internvl'"):
        InternVLTeacher.from_pretrained(path=str(qwen), device="cpu")
    with pytest.raises(UserError, match="not a model folder"):
        InternVLTeacher.from_pretrained(path=str(tmp_path / "missing"), device="cpu")


def test_config_matches_the_constructor_and_fails_offline_with_a_hint(tmp_path, monkeypatch):
    import inspect
    from pathlib import Path

    import huggingface_hub.constants
    from hydra.errors import InstantiationException
    from hydra.utils import get_method, instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf/teacher/internvl3_8b.yaml")
    params = inspect.signature(get_method(cfg._target_)).parameters
    assert set(cfg) - {"_target_"} == set(params)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(InstantiationException) as err:
        instantiate(cfg, device="cpu")
    assert "hf download OpenGVLab/InternVL3-8B-hf" in str(err.value.__cause__)
