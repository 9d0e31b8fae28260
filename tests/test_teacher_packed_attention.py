"""The packed vision attention (one SDPA call for equal-length chunks) computes what transformers'
per-chunk path computes: the kernel against a dense block-diagonal reference, and whole tiny Qwen-VL
teachers (loss and its gradient, a batch of several videos) against the same checkpoint unpacked."""

import pytest
import torch
from teacher_fixtures import write_tiny_teacher

from harness.teachers import QwenVLTeacher
from harness.teachers import packed_attention
from harness.teachers.packed_attention import NAME, packed_sdpa, use_packed_vision_attention
from lab.micro.training.train_teacher import yes_no_inputs

PREPROCESSOR = {"size": {"shortest_edge": 28 * 28, "longest_edge": 64 * 64 * 4}}
QUESTIONS = ["Is the red agent on the green cell?", "Does the agent avoid the walls at all times?"]


def block_diagonal_reference(query, key, value, lengths):
    """Dense attention with everything outside the chunks masked out, in [1, seq, heads, dim]."""
    ids = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    mask = ids[:, None] == ids[None, :]
    out = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=mask)
    return out.transpose(1, 2)


@pytest.mark.parametrize("lengths", [[16, 16, 16, 16], [4, 12, 9]], ids=["equal", "unequal"])
def test_packed_sdpa_is_block_diagonal_attention(lengths):
    g = torch.Generator().manual_seed(0)
    query, key, value = (torch.randn(1, 2, sum(lengths), 8, generator=g, requires_grad=True) for _ in range(3))
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()])
    out, _ = packed_sdpa(None, query, key, value, cu_seq_lens_q=cu)
    expected = block_diagonal_reference(query, key, value, lengths)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    grads = torch.autograd.grad(out.square().sum(), (query, key, value))
    expected_grads = torch.autograd.grad(expected.square().sum(), (query, key, value))
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_packed_sdpa_refuses_masks_and_causal_attention():
    x = torch.randn(1, 2, 8, 4)
    cu = torch.tensor([0, 4, 8])
    with pytest.raises(ValueError, match="vision towers only"):
        packed_sdpa(None, x, x, x, attention_mask=torch.ones(8, 8, dtype=torch.bool), cu_seq_lens_q=cu)
    with pytest.raises(ValueError, match="vision towers only"):
        packed_sdpa(None, x, x, x, is_causal=True, cu_seq_lens_q=cu)


@pytest.fixture(scope="module", params=["qwen3_vl", "qwen2_5_vl"])
def teachers(request, tmp_path_factory):
    path = str(write_tiny_teacher(tmp_path_factory.mktemp(request.param), request.param, preprocessor=PREPROCESSOR))
    packed = QwenVLTeacher.from_pretrained(path=path, device="cpu")
    plain = QwenVLTeacher.from_pretrained(path=path, device="cpu", packed_vision_attention=False)
    return packed, plain


def test_teachers_load_packed_vision_and_plain_text_attention(teachers):
    packed, plain = teachers
    assert packed.model.config.vision_config._attn_implementation == NAME
    assert packed.model.config.text_config._attn_implementation == plain.model.config.text_config._attn_implementation
    assert plain.model.config.vision_config._attn_implementation != NAME


def test_packed_teacher_gives_the_same_loss_and_frame_gradient(teachers):
    results = []
    for teacher in teachers:
        frames = torch.rand(6, 3, 56, 84, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
        nll = teacher.yes_nll(frames, QUESTIONS)
        (grad,) = torch.autograd.grad(nll.sum(), frames)
        results.append((nll, grad))
    (nll_packed, grad_packed), (nll_plain, grad_plain) = results
    torch.testing.assert_close(nll_packed, nll_plain, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grad_packed, grad_plain, atol=1e-6, rtol=1e-4)
    assert grad_plain.abs().sum() > 0


def test_a_tower_forward_reads_its_chunk_lengths_once(teachers, monkeypatch):
    """Each read of the chunk lengths waits for the GPU; every block of one forward gets the same tensor."""
    reads = []
    monkeypatch.setattr(packed_attention, "read_lengths", lambda cu: reads.append(1) or cu.diff().tolist())
    packed = teachers[0]
    assert len(packed.model.model.visual.blocks) > 1
    with torch.no_grad():
        for seed in range(2):
            packed.encode_video(torch.rand(6, 3, 56, 84, generator=torch.Generator().manual_seed(seed)))
    # Once per forward and tensor (Qwen2.5-VL: windows and whole frames): a new forward makes new tensors.
    assert len(reads) == 2 * (1 if packed.family == "qwen3_vl" else 2)


def test_packed_teacher_batches_several_videos_exactly(teachers):
    """The training path: a batch of videos, each its own chunks in one vision call."""
    videos = [torch.rand(4, 3, 56, 84, generator=torch.Generator().manual_seed(s)) for s in range(3)]
    logits = []
    with torch.no_grad():
        for teacher in teachers:
            inputs = yes_no_inputs(teacher, videos, [QUESTIONS[0]] * len(videos))
            logits.append(teacher.model(**inputs, logits_to_keep=1, use_cache=False).logits)
    torch.testing.assert_close(logits[0], logits[1], atol=1e-5, rtol=1e-5)


def test_a_tower_on_real_flash_attention_keeps_it(teachers):
    model = teachers[1].model
    vision = model.config.vision_config
    before = vision._attn_implementation
    vision._attn_implementation = "flash_attention_2"
    try:
        use_packed_vision_attention(model)
        assert vision._attn_implementation == "flash_attention_2"
    finally:
        vision._attn_implementation = before
