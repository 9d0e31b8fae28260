"""QwenVLTeacher on tiny random Qwen3-VL / Qwen2.5-VL checkpoints: the loss, its gradient, the prompt
expansion against the official processors' text side, loading errors and query synthesis."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from teacher_fixtures import write_tiny_teacher
from transformers import Qwen2_5_VLProcessor, Qwen3VLProcessor
from transformers.video_utils import VideoMetadata

from benchmarks.micro import generate_instances
from harness.frames import uniform_frame_indices
from harness.teachers import QwenVLTeacher
from harness.teachers.clock import consecutive_clock, frame_clock
from harness.teachers.preprocess import video_pixels
from harness.teachers.queries import fallback_queries
from harness.types import Instance, UserError

FAMILIES = ["qwen3_vl", "qwen2_5_vl"]
# Small pixel budgets so a 3-frame 56x84 clip stays small for both patch sizes (14 and 16).
PREPROCESSOR = {"size": {"shortest_edge": 28 * 28, "longest_edge": 64 * 64 * 4}}
QUESTIONS = ["Is the red agent on the green cell?", "Does the agent avoid the walls at all times?", "Is it whole?"]


@pytest.fixture(scope="module", params=FAMILIES)
def teacher(request, tmp_path_factory):
    """A teacher with a fixed presentation rate (``video_fps``): every video reads as consecutive frames."""
    path = write_tiny_teacher(tmp_path_factory.mktemp(request.param), request.param, preprocessor=PREPROCESSOR)
    return QwenVLTeacher.from_pretrained(path=str(path), device="cpu", video_fps=2.0)


@pytest.fixture(scope="module", params=FAMILIES)
def clocked(request, tmp_path_factory):
    """A teacher told each video's true clock, as the real teachers' configs have it."""
    path = write_tiny_teacher(tmp_path_factory.mktemp(request.param), request.param, preprocessor=PREPROCESSOR)
    return QwenVLTeacher.from_pretrained(path=str(path), device="cpu", video_fps=None)


def source_clock(num_frames: int) -> VideoMetadata:
    """K frames picked uniformly from an 89-frame, 16 fps clip, as vlmteach shows them."""
    return frame_clock(16.0, uniform_frame_indices(89, num_frames), 89)


def frames(seed=0, t=3):
    return torch.rand(t, 3, 56, 84, generator=torch.Generator().manual_seed(seed))


def test_yes_nll_is_differentiable_wrt_frames(teacher):
    x = frames().requires_grad_(True)
    nll = teacher.yes_nll(x, QUESTIONS)
    assert nll.shape == (3,) and nll.dtype == torch.float32
    assert torch.isfinite(nll).all() and (nll > 0).all()
    nll.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_batched_questions_equal_one_at_a_time(teacher):
    x = frames()
    with torch.no_grad():
        batched = teacher.yes_nll(x, QUESTIONS)
        single = torch.cat([teacher.yes_nll(x, [q]) for q in QUESTIONS])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-5)


def test_p_yes_is_exp_of_minus_nll(teacher):
    x = frames()
    with torch.no_grad():
        nll = teacher.yes_nll(x, QUESTIONS)
    assert teacher.p_yes(x, QUESTIONS) == pytest.approx(torch.exp(-nll).tolist(), rel=1e-6)


def test_yes_nll_reads_the_video_and_the_question(teacher):
    with torch.no_grad():
        a = teacher.yes_nll(frames(0), QUESTIONS)
        b = teacher.yes_nll(frames(1), QUESTIONS)
    assert (a - b).abs().min() > 1e-6  # other pixels, other answers: the video features reach the LM
    assert len({round(v, 6) for v in a.tolist()}) == 3


def test_yes_nll_is_the_full_vocabulary_nll_of_yes(teacher):
    """Against a plain forward with pixel_values_videos (no shared features) and a manual log-softmax."""
    x = frames()
    video = teacher.encode_video(x)
    text = teacher.chat_text([{"type": "video"}, {"type": "text", "text": QUESTIONS[0] + teacher.question_suffix}])
    text = text.replace(teacher.video_token, teacher.video_placeholder(video.grid, teacher.clock(3)), 1)
    batch = teacher._tokenize([text])
    pixels, grid = video_pixels(x, teacher.spec)
    extra = {"second_per_grid_ts": torch.tensor([2 / teacher.video_fps])} if teacher.family == "qwen2_5_vl" else {}
    with torch.no_grad():
        logits = teacher.model(**batch, pixel_values_videos=pixels, video_grid_thw=torch.tensor([grid]), **extra).logits
        expected = -torch.log_softmax(logits[0, -1].float(), -1)[teacher.yes_ids[0]]
        assert teacher.yes_nll(x, QUESTIONS[:1])[0] == pytest.approx(expected.item(), rel=1e-5)


def test_vision_tower_runs_once_per_call(teacher):
    calls = []
    handle = teacher.model.model.visual.register_forward_hook(lambda *a: calls.append(1))
    try:
        with torch.no_grad():
            teacher.yes_nll(frames(), QUESTIONS)
    finally:
        handle.remove()
    assert len(calls) == 1


def official_text_side(teacher, grid, metadata):
    """The official processor's placeholder expansion and modality ids. The processor object cannot be
    constructed without torchvision (its video processor), so its text-side methods run on an
    instance whose attributes are set as ``__init__`` would set them."""
    cls = Qwen3VLProcessor if teacher.family == "qwen3_vl" else Qwen2_5_VLProcessor
    proc = cls.__new__(cls)
    vars(proc).update(
        tokenizer=teacher.tokenizer, image_token=teacher.image_token, video_token=teacher.video_token,
        image_token_id=teacher.model.config.image_token_id, video_token_id=teacher.model.config.video_token_id,
        vision_start_token=teacher.vision_start, vision_end_token=teacher.vision_end,
        video_processor=SimpleNamespace(merge_size=teacher.spec.merge_size,
                                        temporal_patch_size=teacher.spec.temporal_patch_size),
        image_processor=SimpleNamespace(merge_size=teacher.spec.merge_size))
    inputs = {"video_grid_thw": torch.tensor([grid]), "video_metadata": [metadata]}
    template = teacher.chat_text([{"type": "video"}, {"type": "text", "text": "Is it red?"}])
    (text,), _ = proc.get_text_with_replacements([template], videos_replacements=[proc.replace_video_token(inputs, 0)])
    ids = teacher.tokenizer(text)["input_ids"]
    return text, ids, proc.create_mm_token_type_ids([ids])[0]


def official_second_per_grid_ts(teacher, grid, metadata) -> list[float]:
    """Qwen2_5_VLProcessor._process_videos's seconds per temporal patch; its video processor (torchvision)
    is replaced by what it returns: the grid and the metadata it was given."""
    proc = Qwen2_5_VLProcessor.__new__(Qwen2_5_VLProcessor)
    returned = {"video_grid_thw": torch.tensor([grid]), "video_metadata": [metadata]}
    video_processor = type("VideoProcessor", (), {"__call__": lambda self, videos, **kw: dict(returned),
                                                  "temporal_patch_size": teacher.spec.temporal_patch_size})
    vars(proc).update(video_processor=video_processor(), video_token=None)
    processed, _ = proc._process_videos(np.zeros((len(metadata.frames_indices), 8, 8, 3), np.uint8))
    return [float(s) for s in processed["second_per_grid_ts"]]


@pytest.mark.parametrize("num_frames", [3, 8, 24])
def test_prompt_expansion_matches_official_processor(clocked, num_frames):
    """K of 89 frames at 16 fps: the official processor given the true VideoMetadata (fps, frames_indices,
    total_num_frames) writes the same text, ids, modality types and Qwen2.5-VL second_per_grid_ts."""
    clock = source_clock(num_frames)
    video = clocked.encode_video(frames(t=num_frames), clock)
    grid = video.grid
    metadata = VideoMetadata(total_num_frames=89, fps=16.0, frames_indices=list(clock.frames_indices))
    text, ids, types = official_text_side(clocked, grid, metadata)
    ours = clocked.chat_text([{"type": "video"}, {"type": "text", "text": "Is it red?"}])
    ours = ours.replace(clocked.video_token, clocked.video_placeholder(grid, video.clock), 1)
    assert ours == text
    batch = clocked._tokenize([ours])
    assert batch["input_ids"][0].tolist() == ids and batch["mm_token_type_ids"][0].tolist() == types
    assert sum(t == 2 for t in types) == grid[0] * grid[1] * grid[2] // clocked.spec.merge_size**2
    if clocked.family == "qwen3_vl":
        assert text.count("seconds>") == grid[0]
    else:
        ours_ts = clocked._grid_extra(1, video.clock)["second_per_grid_ts"].tolist()
        assert ours_ts == pytest.approx(official_second_per_grid_ts(clocked, grid, metadata), rel=1e-6)


def test_yes_nll_tells_the_model_the_true_clock(clocked):
    """The loss equals a plain forward on the official processor's text and second_per_grid_ts for the true
    clock; told the old convention (consecutive frames at 2 fps) the prompt or the positions differ."""
    x, clock = frames(t=8), source_clock(8)
    metadata = VideoMetadata(total_num_frames=89, fps=16.0, frames_indices=list(clock.frames_indices))
    pixels, grid = video_pixels(x, clocked.spec)
    text, ids, types = official_text_side(clocked, grid, metadata)
    text = text.replace("Is it red?", QUESTIONS[0] + clocked.question_suffix)
    batch = clocked._tokenize([text])
    extra = {}
    if clocked.family == "qwen2_5_vl":
        extra["second_per_grid_ts"] = torch.tensor(official_second_per_grid_ts(clocked, grid, metadata))
    with torch.no_grad():
        logits = clocked.model(**batch, pixel_values_videos=pixels, video_grid_thw=torch.tensor([grid]), **extra).logits
        expected = -torch.log_softmax(logits[0, -1].float(), -1)[clocked.yes_ids[0]]
        assert clocked.yes_nll(x, QUESTIONS[:1], clock)[0] == pytest.approx(expected.item(), rel=1e-5)
    old = clocked.encode_video(x, consecutive_clock(8, 2.0))
    new = clocked.encode_video(x, clock)
    if clocked.family == "qwen3_vl":
        assert clocked._question_texts(old, QUESTIONS[:1]) != clocked._question_texts(new, QUESTIONS[:1])
    else:  # the same text; the temporal rope positions of the video tokens follow second_per_grid_ts
        def positions(video):
            prefix, tails = clocked._prefix_and_tails(clocked._question_texts(video, QUESTIONS[:1]), clocked.vision_end)
            return clocked._full_rows(prefix, tails, video)[2]
        assert not torch.equal(positions(old), positions(new))
    with pytest.raises(UserError, match="clock"):
        clocked.yes_nll(x, QUESTIONS[:1])


def test_gradient_checkpointing_trains_without_dropout(tmp_path):
    path = write_tiny_teacher(tmp_path, "qwen3_vl", preprocessor=PREPROCESSOR)
    config = json.loads((path / "config.json").read_text())
    config["text_config"]["attention_dropout"] = 0.3  # must be forced to 0 in train mode
    (path / "config.json").write_text(json.dumps(config))
    plain = QwenVLTeacher.from_pretrained(path=str(path), device="cpu")
    ckpt = QwenVLTeacher.from_pretrained(path=str(path), device="cpu", gradient_checkpointing=True)
    assert ckpt.model.training and ckpt.model.is_activation_checkpointing and not plain.model.training
    assert all(not p.requires_grad for p in ckpt.model.parameters())
    assert all(m.attention_dropout == 0.0 for m in ckpt.model.modules() if hasattr(m, "attention_dropout"))
    mlp, calls = ckpt.model.model.language_model.layers[0].mlp, []
    mlp_forward = mlp.forward
    mlp.forward = lambda *a, **k: calls.append(1) or mlp_forward(*a, **k)
    x = frames().requires_grad_(True)
    nll = ckpt.yes_nll(x, QUESTIONS)
    nll.sum().backward()
    assert len(calls) == 2  # recomputed inside the checkpointed layer during backward
    with torch.no_grad():
        torch.testing.assert_close(nll.detach(), plain.yes_nll(x, QUESTIONS), atol=1e-5, rtol=1e-5)
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_missing_weights_raise_user_error(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="teacher.path="):
        QwenVLTeacher.from_pretrained(path=str(tmp_path / "nowhere"))
    import huggingface_hub.constants
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(UserError, match=r"hf download Qwen/Qwen3-VL-4B-Instruct(.|\n)*teacher\.path="):
        QwenVLTeacher.from_pretrained(path="Qwen/Qwen3-VL-4B-Instruct")


def test_unsupported_model_type_is_a_user_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava"}))
    with pytest.raises(UserError, match="not a supported Qwen-VL teacher"):
        QwenVLTeacher.from_pretrained(path=str(tmp_path))


INSTANCE = Instance(id="micro/0001", bench="micro", task="reach", category="navigation", split="id",
                    prompt="Move the red agent to the green cell.", num_frames=17, height=32, width=32, fps=8,
                    first_frame=np.full((32, 32, 3), 40, np.uint8))


@pytest.fixture(scope="module")
def micro_teacher():
    # The committed (trained) micro teacher, with a short reply budget.
    return QwenVLTeacher.from_pretrained(path="benchmarks/micro/weights/teacher", device="cpu",
                                         max_new_tokens=8, synthesis_retries=1)


def test_random_micro_teacher_falls_back_deterministically(micro_teacher):
    first = micro_teacher.synthesize_queries(INSTANCE, max_process=2)
    assert first.fallback is True
    expected = fallback_queries(INSTANCE.prompt, 2)
    assert (first.goal, first.process) == (expected.goal, expected.process)
    assert len(first.raw.split("\n---\n")) == 2  # one greedy try and one sampled retry, both kept
    assert micro_teacher.synthesize_queries(INSTANCE, max_process=2) == first


def test_synthesis_retries_until_a_reply_parses(micro_teacher, monkeypatch):
    replies = iter(["not json", '{"goal": "Is the agent on the green cell?", "process": ["Does it stay whole?"]}'])
    calls = []

    def fake_generate(prompt, images, max_new_tokens, sample_seed):
        calls.append((prompt, images, sample_seed))
        return next(replies)

    monkeypatch.setattr(micro_teacher, "_generate", fake_generate)
    queries = micro_teacher.synthesize_queries(INSTANCE, max_process=3)
    assert queries.fallback is False and queries.process == ["Does it stay whole?"]
    assert [seed is None for _, _, seed in calls] == [True, False]  # greedy first, then a seeded sample
    assert "could not be read" in calls[1][0] and INSTANCE.prompt in calls[0][0]
    assert calls[0][1][0] is INSTANCE.first_frame


def test_generate_is_greedy_and_checks_images(micro_teacher):
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    a = micro_teacher.generate("What is in the grid?", images=[image], max_new_tokens=4)
    assert a == micro_teacher.generate("What is in the grid?", images=[image], max_new_tokens=4)
    assert isinstance(a, str) and a
    with pytest.raises(ValueError, match="uint8"):
        micro_teacher.generate("x", images=[image.astype(np.float32)])
    text_only = micro_teacher.generate("What is in the grid?", max_new_tokens=4)
    assert isinstance(text_only, str)


def test_a_static_synthesis_cache_writes_the_same_questions():
    instances = generate_instances("id", 1, seed=3)  # one per family: prompts of different lengths
    dynamic = QwenVLTeacher.from_pretrained(path="benchmarks/micro/weights/teacher", device="cpu")
    static = QwenVLTeacher.from_pretrained(path="benchmarks/micro/weights/teacher", device="cpu",
                                           synthesis_cache_len=1024)
    configs = []
    original = static.model.generate
    static.model.generate = lambda **kw: configs.append(kw["generation_config"]) or original(**kw)
    for x in instances:
        assert static.synthesize_queries(x, max_process=3) == dynamic.synthesize_queries(x, max_process=3)
    assert {(c.cache_implementation, c.max_cache_len) for c in configs} == {("static", 1024)}
    assert static.model._previous_max_cache_length == 1024  # one cache size for every prompt: no recompiles
    with pytest.raises(UserError, match="synthesis_cache_len"):
        QwenVLTeacher.from_pretrained(path="benchmarks/micro/weights/teacher", device="cpu", synthesis_cache_len=0)


def test_system_prompt_and_image_expansion(micro_teacher):
    teacher = QwenVLTeacher.from_pretrained(path="benchmarks/micro/weights/teacher", device="cpu",
                                            system_prompt="You grade videos.")
    text = teacher.chat_text([{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Same?"}])
    assert text.startswith("<|im_start|>system\nYou grade videos.<|im_end|>\n<|im_start|>user\n")
    assert not micro_teacher.chat_text([{"type": "text", "text": "Same?"}]).startswith("<|im_start|>system")
    # Two 32x32 images: each is 4x4 patches of 8 px -> 4 LLM tokens after the 2x2 merge.
    seen = {}
    teacher.model.generate = lambda **kw: seen.update(kw) or kw["input_ids"]
    images = [np.zeros((32, 32, 3), np.uint8), np.zeros((48, 32, 3), np.uint8)]
    teacher.generate("Same?", images=images, max_new_tokens=1)
    assert seen["image_grid_thw"].tolist() == [[1, 4, 4], [1, 6, 4]]
    assert (seen["input_ids"] == teacher.model.config.image_token_id).sum() == 4 + 6
    assert seen["pixel_values"].shape == (16 + 24, 3 * 2 * 8 * 8)


def test_multi_token_answer_is_teacher_forced(teacher, monkeypatch):
    """If "Yes" were split into tokens (a, b): -log p(a | prompt) - log p(b | prompt, a), by hand."""
    a, b = teacher.tokenizer.convert_tokens_to_ids(["yes", "!"])
    monkeypatch.setattr(teacher, "yes_ids", [a, b])
    x = frames()
    video = teacher.encode_video(x)
    text = teacher.chat_text([{"type": "video"}, {"type": "text", "text": QUESTIONS[1] + teacher.question_suffix}])
    batch = teacher._tokenize([text.replace(teacher.video_token, teacher.video_placeholder(video.grid, teacher.clock(3)), 1)],
                              suffix=[a, b])
    pixels, grid = video_pixels(x, teacher.spec)
    extra = {"second_per_grid_ts": torch.tensor([2 / teacher.video_fps])} if teacher.family == "qwen2_5_vl" else {}
    with torch.no_grad():
        logp = teacher.model(**batch, pixel_values_videos=pixels, video_grid_thw=torch.tensor([grid]),
                             **extra).logits[0].float().log_softmax(-1)
        expected = -(logp[-3, a] + logp[-2, b])
        got = teacher.yes_nll(x, QUESTIONS[:2])
    assert got[1] == pytest.approx(expected.item(), rel=1e-5)
