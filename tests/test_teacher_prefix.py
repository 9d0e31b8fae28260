"""The shared-video-prefix path of QwenVLTeacher against the batched reference: same loss, same gradients
to the frames, fewer tokens through the language model; under either attention mask format, under
gradient checkpointing, and with compiled decoder layers."""

import pytest
import torch
from teacher_fixtures import write_tiny_teacher
from torch._dynamo.testing import CompileCounterWithBackend

from harness.teachers import QwenVLTeacher
from harness.teachers.shared_prefix import compile_decoder_layers
from harness.types import UserError

PREPROCESSOR = {"size": {"shortest_edge": 28 * 28, "longest_edge": 64 * 64 * 4}}
# Different lengths, so the question tails are padded.
QUESTIONS = ["Is the red agent on the green cell?", "Does the agent avoid the walls at all times?", "Is it whole?"]


@pytest.fixture(scope="module", params=["qwen3_vl", "qwen2_5_vl"])
def teacher(request, tmp_path_factory):
    path = write_tiny_teacher(tmp_path_factory.mktemp(request.param), request.param, preprocessor=PREPROCESSOR)
    return QwenVLTeacher.from_pretrained(path=str(path), device="cpu")


def frames():
    return torch.rand(5, 3, 56, 84, generator=torch.Generator().manual_seed(0)).requires_grad_(True)


def loss_and_grad(teacher, path: str):
    x = frames()
    nll = getattr(teacher, path)(teacher.encode_video(x), QUESTIONS)
    weights = torch.tensor([0.5, 0.25, 0.25])  # the method's weighting: every question reaches the gradient
    (grad,) = torch.autograd.grad((nll * weights).sum(), x)
    return nll.detach(), grad


def test_shared_prefix_equals_batched_loss_and_gradients(teacher):
    nll_ref, grad_ref = loss_and_grad(teacher, "score_video_batched")
    nll, grad = loss_and_grad(teacher, "score_video_shared_prefix")
    torch.testing.assert_close(nll, nll_ref, atol=1e-5, rtol=1e-5)
    assert grad_ref.abs().max() > 0
    torch.testing.assert_close(grad, grad_ref, atol=1e-6 * float(grad_ref.abs().max()) + 1e-9, rtol=1e-3)
    # One question at a time is the same number again (padding does not leak between rows).
    with torch.no_grad():
        video = teacher.encode_video(frames())
        single = torch.cat([teacher.score_video_shared_prefix(video, [q]) for q in QUESTIONS])
    torch.testing.assert_close(single, nll_ref, atol=1e-5, rtol=1e-5)


def test_yes_nll_uses_the_prefix_once(teacher):
    seen: list[int] = []
    hook = teacher.model.model.language_model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["inputs_embeds"].shape[0] * kwargs["inputs_embeds"].shape[1]),
        with_kwargs=True,
    )
    try:
        with torch.no_grad():
            teacher.yes_nll(frames(), QUESTIONS)
            shared = sum(seen)
            seen.clear()
            teacher.score_video_batched(teacher.encode_video(frames()), QUESTIONS)
            batched = sum(seen)
    finally:
        hook.remove()
    assert teacher.shared_prefix  # the default
    t, h, w = teacher.encode_video(frames()).grid
    video_tokens = t * h * w // teacher.spec.merge_size**2
    # The batched path runs the video tokens once per question; the shared path once.
    assert batched - shared >= (len(QUESTIONS) - 1) * video_tokens


def test_an_instance_builds_its_row_once_and_new_questions_get_their_own(teacher, monkeypatch):
    """The steps of one instance ask the same questions of frames of the same grid: the row's ids, positions and
    mask are built at the first step only. Other questions, or another clip length, get a row of their own."""
    others, shorter = QUESTIONS[::-1][:2], frames()[:3]  # other questions; another grid and clock
    with torch.no_grad():
        reference_others = teacher.score_video_batched(teacher.encode_video(frames()), others)
        reference_shorter = teacher.score_video_batched(teacher.encode_video(shorter), QUESTIONS)
    teacher._rows.clear()
    built = []
    rope_index = teacher.model.model.get_rope_index
    monkeypatch.setattr(teacher.model.model, "get_rope_index", lambda *a, **k: built.append(1) or rope_index(*a, **k))
    with torch.no_grad():
        first = teacher.yes_nll(frames(), QUESTIONS)
        again = teacher.yes_nll(frames(), QUESTIONS)
        assert len(built) == 1
        torch.testing.assert_close(again, first, atol=0, rtol=0)
        torch.testing.assert_close(teacher.yes_nll(frames(), others), reference_others, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(teacher.yes_nll(shorter, QUESTIONS), reference_shorter, atol=1e-5, rtol=1e-5)
    assert len(built) == 3


def test_shared_prefix_with_eager_attention_masks(teacher):
    # The block mask is built in the attention implementation's own format (eager: additive floats).
    nll_ref, _ = loss_and_grad(teacher, "score_video_batched")
    teacher.model.set_attn_implementation("eager")
    try:
        nll, _ = loss_and_grad(teacher, "score_video_shared_prefix")
    finally:
        teacher.model.set_attn_implementation("sdpa")
    torch.testing.assert_close(nll, nll_ref, atol=1e-5, rtol=1e-5)


def test_shared_prefix_under_gradient_checkpointing(tmp_path):
    path = write_tiny_teacher(tmp_path / "t", "qwen3_vl", preprocessor=PREPROCESSOR)
    ckpt = QwenVLTeacher.from_pretrained(path=str(path), device="cpu", gradient_checkpointing=True)
    assert ckpt.shared_prefix and ckpt.model.is_activation_checkpointing
    nll_ref, grad_ref = loss_and_grad(ckpt, "score_video_batched")
    nll, grad = loss_and_grad(ckpt, "score_video_shared_prefix")
    torch.testing.assert_close(nll, nll_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grad, grad_ref, atol=1e-6 * float(grad_ref.abs().max()) + 1e-9, rtol=1e-3)


@pytest.mark.parametrize("family", ["qwen3_vl", "qwen2_5_vl"])
def test_compiled_decoder_layers_share_one_graph(tmp_path, family):
    path = write_tiny_teacher(tmp_path / "t", family, preprocessor=PREPROCESSOR, text_layers=5)
    teacher = QwenVLTeacher.from_pretrained(path=str(path), device="cpu")
    nll_ref, grad_ref = loss_and_grad(teacher, "score_video_shared_prefix")
    counter = CompileCounterWithBackend("aot_eager")
    compile_decoder_layers(teacher.model.model.language_model.layers, backend=counter)
    nll, grad = loss_and_grad(teacher, "score_video_shared_prefix")
    torch.testing.assert_close(nll, nll_ref)
    torch.testing.assert_close(grad, grad_ref)
    graphs = counter.frame_count
    assert 0 < graphs < len(teacher.model.model.language_model.layers)  # one graph for every layer
    teacher.yes_nll(frames(), QUESTIONS[:2])  # other question lengths: the graph is dynamic
    assert counter.frame_count == graphs
    with torch.no_grad():
        teacher.yes_nll(frames(), QUESTIONS)  # the no-grad graph (scoring), once
        graphs = counter.frame_count
        teacher.generate("Is it whole?", max_new_tokens=3)  # with a KV cache: the eager layers
    assert counter.frame_count == graphs


def test_flash_attention_is_refused_for_the_block_mask(teacher):
    config = teacher.model.config.text_config
    before = config._attn_implementation
    config._attn_implementation = "flash_attention_2"  # would drop a dense mask: the tails would see each other
    try:
        with pytest.raises(UserError, match="shared_prefix=false"):
            teacher.yes_nll(frames(), QUESTIONS)
    finally:
        config._attn_implementation = before
