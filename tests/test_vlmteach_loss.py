"""vlmteach building blocks without models: uniform frame selection and the multi-question loss."""

import pytest
import torch

from harness.frames import uniform_frame_indices as uniform_indices
from harness.types import Queries
from harness.vlmteach.frames import select_frames
from harness.vlmteach.loss import multi_vqa_loss, weigh_questions

QUERIES = Queries(goal="goal?", process=["p1?", "p2?", "p3?"])


def test_uniform_indices_spread_over_the_clip_with_both_ends():
    assert uniform_indices(89, 24)[0] == 0 and uniform_indices(89, 24)[-1] == 88
    idx = uniform_indices(89, 24)
    assert len(idx) == 24 and len(set(idx)) == 24 and idx == sorted(idx)
    gaps = [b - a for a, b in zip(idx, idx[1:])]
    assert max(gaps) - min(gaps) <= 1  # evenly spaced up to rounding
    assert uniform_indices(17, 5) == [0, 4, 8, 12, 16]


def test_a_clip_shorter_than_k_is_shown_whole_without_repeats():
    assert uniform_indices(17, 24) == list(range(17))
    assert uniform_indices(17, 17) == list(range(17))


def test_uniform_indices_reject_empty_inputs():
    with pytest.raises(ValueError):
        uniform_indices(0, 4)
    with pytest.raises(ValueError):
        uniform_indices(10, 0)


def test_select_frames_keeps_the_gradient_to_the_picked_frames_only():
    frames = torch.rand(9, 3, 4, 4, requires_grad=True)
    picked, idx = select_frames(frames, 3)
    assert idx == [0, 4, 8] and picked.shape == (3, 3, 4, 4)
    picked.sum().backward()
    per_frame = frames.grad.abs().sum(dim=(1, 2, 3))
    assert set(torch.nonzero(per_frame).flatten().tolist()) == {0, 4, 8}


def test_default_lambda_splits_half_the_weight_over_process_questions():
    w = weigh_questions(QUERIES, 0.5)
    assert w.questions == ["goal?", "p1?", "p2?", "p3?"]
    assert w.roles == ["goal", "process", "process", "process"]
    assert w.weights == pytest.approx([0.5, 0.5 / 3, 0.5 / 3, 0.5 / 3])


def test_lambda_one_and_zero_leave_out_the_unweighted_questions():
    goal_only = weigh_questions(QUERIES, 1.0)
    assert goal_only.questions == ["goal?"] and goal_only.weights == [1.0]
    process_only = weigh_questions(QUERIES, 0.0)
    assert process_only.questions == ["p1?", "p2?", "p3?"]
    assert process_only.weights == pytest.approx([1 / 3] * 3)


def test_lambda_out_of_range_or_missing_process_questions_are_errors():
    with pytest.raises(ValueError, match="goal_weight"):
        weigh_questions(QUERIES, 1.5)
    with pytest.raises(ValueError, match="no process question"):
        weigh_questions(Queries(goal="g?", process=[]), 0.5)
    assert weigh_questions(Queries(goal="g?", process=[]), 1.0).questions == ["g?"]


def test_multi_vqa_loss_is_the_paper_formula_and_differentiable():
    nll = torch.tensor([0.2, 1.0, 2.0, 3.0], requires_grad=True)
    w = weigh_questions(QUERIES, 0.5)
    loss = multi_vqa_loss(nll, w.weights)
    assert loss.item() == pytest.approx(0.5 * 0.2 + 0.5 * (1.0 + 2.0 + 3.0) / 3)
    loss.backward()
    assert nll.grad.tolist() == pytest.approx(w.weights)
    with pytest.raises(ValueError, match="expected 4"):
        multi_vqa_loss(nll[:3], w.weights)
