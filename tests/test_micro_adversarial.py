"""Attacks on the micro teacher (``lab.micro.training.adversarial``): the latents the attacker starts
from are the clip's own, the attack raises the teacher's P(Yes) without touching the condition frame, and
every attacked clip carries the scorer's labels; the pipeline adds them between training phases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from benchmarks.micro import render_solution
from benchmarks.micro.questions import questions_for
from harness.students.patch_linear import PatchLinearDecoder
from harness.teachers import QwenVLTeacher
from harness.frames import clip_to_frames, frames_to_clip
from lab.micro.training import data
from lab.micro.training.adversarial import attack_clips, latent_clutter, to_latents, yes_loss
from lab.micro.training.measure import WEIGHTS
from lab.micro.training.pipeline import (
    SCALES,
    _pad_labels,
    _with_adversarial_clips,
    train_teacher_stage,
    yes_no_stream,
)
from lab.micro.training.train_light_decoder import FILE as LIGHT_FILE


@pytest.fixture(scope="module")
def instances():
    return data.training_instances(("id", "ood"), 1, seed=13)


@pytest.fixture(scope="module")
def decoder():
    return PatchLinearDecoder.from_state_dict(load_file(str(WEIGHTS / "student" / LIGHT_FILE))).eval()


@pytest.fixture(scope="module")
def teacher():
    return QwenVLTeacher.from_pretrained(path=str(WEIGHTS / "teacher"), device="cpu")


def test_to_latents_recovers_the_latents_of_any_frames_the_decoder_draws():
    torch.manual_seed(0)
    decoder = PatchLinearDecoder(latent_channels=16, patch_size=8)
    latents = torch.randn(2, 3, 16, 4, 4)
    torch.testing.assert_close(to_latents(decoder, decoder.project(latents)), latents, atol=1e-4, rtol=1e-4)


def test_to_latents_of_a_rendered_clip_decode_back_to_its_labels(instances, decoder):
    x = instances[0]
    clip = render_solution(x, "wrong_target")
    again = decoder(to_latents(decoder, clip_to_frames(clip)[None]))[0]
    np.testing.assert_array_equal(data.question_labels(x, frames_to_clip(again)), data.question_labels(x, clip))


def test_attack_raises_p_yes_keeps_the_condition_and_labels_what_it_returns(instances, decoder, teacher):
    chosen = instances[:2]
    frames = torch.stack([clip_to_frames(render_solution(x, "wrong_target")) for x in chosen])
    start = decoder(to_latents(decoder, frames))
    # Small steps, so that descent is what they show: at the rounds' lr (0.05) a first Adam step overshoots on the
    # shipped teacher (loss 4.9 -> 7.3 on these clips).
    clips, labels, p_goal = attack_clips(teacher, decoder, frames, chosen, steps=3, lr=0.01, snapshots=(1, 3))
    assert clips.shape == (4, *frames.shape[1:]) and clips.dtype == torch.float16 and len(labels) == 4
    torch.testing.assert_close(clips[:, 0].float(), start[[0, 1, 0, 1], 0], atol=1e-3, rtol=0)  # frame 0 stays
    assert (clips[2:].float() - start).abs().amax((1, 2, 3, 4)).min() > 1e-2  # every clip moved
    with torch.no_grad():
        before, p_start = yes_loss(teacher, list(start), chosen)
        after, p_end = yes_loss(teacher, list(clips[2:].float()), chosen)
    assert after < before
    # The goal P(Yes) returned is the teacher's on each kept clip (up to its half-precision copy).
    assert p_goal.shape == (4,)
    torch.testing.assert_close(p_goal[2:], p_end, atol=2e-3, rtol=0)
    owners = [*chosen, *chosen]  # snapshot-major
    for x, clip, label in zip(owners, clips, labels, strict=True):
        np.testing.assert_array_equal(label, data.question_labels(x, frames_to_clip(clip.float())))


def test_pipeline_rounds_attack_clips_the_scorer_rejects_and_append_them(instances, teacher, decoder):
    clips = [render_solution(x, b) for x in instances[:2] for b in ("correct", "wrong_target")]
    frames = torch.from_numpy(np.stack(clips)).permute(0, 1, 4, 2, 3).half() / 255
    owner = torch.tensor([0, 0, 1, 1])
    labels = _pad_labels([data.question_labels(x, c) for x, c in zip([instances[0]] * 2 + [instances[1]] * 2, clips)])
    assert labels[:, 0].tolist() == [1, 0, 1, 0]
    scale = SCALES["toy"].__class__(**{**SCALES["toy"].__dict__, "adversarial_clips": 8, "adversarial_batch": 2,
                                       "adversarial_repeat": 2})
    out_frames, out_owner, out_labels, stats = _with_adversarial_clips(
        scale, torch.device("cpu"), teacher, decoder, instances[:2], frames, owner, labels, seed=1)
    n = stats["clips"]
    assert n == 2 * 3  # both rejected clips (no more exist), three snapshots each
    assert len(out_frames) == len(out_owner) == len(out_labels) == 4 + 2 * n
    torch.testing.assert_close(out_frames[:4], frames)
    torch.testing.assert_close(out_frames[4:4 + n], out_frames[4 + n:])  # the repeat
    assert sorted(out_owner[4:4 + n].tolist()) == [0, 0, 0, 1, 1, 1]
    for o, clip, label in zip(out_owner[4:], out_frames[4:], out_labels[4:]):
        x = instances[int(o)]
        np.testing.assert_array_equal(label[:len(questions_for(x))].numpy(),
                                      data.question_labels(x, frames_to_clip(clip.float())))


def test_pipeline_rounds_refuse_data_with_nothing_to_attack(instances, teacher, decoder):
    clip = render_solution(instances[0], "correct")
    frames = torch.from_numpy(clip[None]).permute(0, 1, 4, 2, 3).half() / 255
    labels = _pad_labels([data.question_labels(instances[0], clip)])
    with pytest.raises(ValueError, match="nothing to attack"):
        _with_adversarial_clips(SCALES["toy"], torch.device("cpu"), teacher, decoder, instances[:1], frames,
                                torch.tensor([0]), labels, seed=1)


def test_pipeline_rounds_need_the_light_decoder(instances, teacher):
    frames = torch.zeros(1, 17, 3, 32, 32)
    with pytest.raises(FileNotFoundError, match="light"):
        _with_adversarial_clips(SCALES["toy"], torch.device("cpu"), teacher, None, instances[:1], frames,
                                torch.tensor([0]), torch.zeros(1, 4), seed=1)


@pytest.mark.parametrize("kind", ["latent", "loop"])
def test_teacher_stage_alternates_training_and_attack_rounds(tmp_path, kind):
    (tmp_path / "student").symlink_to(WEIGHTS / "student")
    scale = SCALES["toy"].__class__(**{**SCALES["toy"].__dict__, "adversarial_rounds": 1, "adversarial_clips": 2,
                                       "adversarial_batch": 2, "adversarial_kind": kind})
    report = train_teacher_stage(tmp_path, scale, torch.device("cpu"), workers=1, init_from=WEIGHTS / "teacher")
    (round_stats,) = report["adversarial_rounds"]
    # two clips (latent) or two instances' loops (loop), three snapshots each
    assert round_stats["clips"] == 2 * 3 and 0 <= round_stats["fooled_rate"] <= 1
    kept = torch.load(tmp_path / "attacked.pt")  # for a later run's --attacked-init
    assert kept["rounds"] == 1 and len(kept["frames"]) == len(kept["owner"]) == len(kept["labels"]) == 2 * 3 * 2
    trained = load_file(str(tmp_path / "teacher" / "model.safetensors"))
    shipped = load_file(str(WEIGHTS / "teacher" / "model.safetensors"))
    assert trained.keys() == shipped.keys()
    assert any(not torch.equal(trained[k], shipped[k]) for k in trained)  # both phases trained it


def test_latent_clutter_repaints_the_same_whole_cells_from_a_frame_on(instances, decoder):
    frames = clip_to_frames(render_solution(instances[0], "correct"))
    redrawn = decoder(to_latents(decoder, frames[None]))[0]  # the clip as the decoder draws it
    starts = set()
    for seed in range(6):
        out = latent_clutter(decoder, frames, torch.Generator().manual_seed(seed))
        assert out.shape == frames.shape and 0 <= out.min() and out.max() <= 1
        changed = ((out - redrawn).abs() > 1e-3).any(1).reshape(len(frames), 4, 8, 4, 8).any(2).any(3)  # [T, 4, 4]
        moved = changed.any((1, 2))
        first = int(moved.nonzero()[0])
        starts.add(first)
        assert first >= 1 and not moved[:first].any()  # the condition frame and those before the start stay
        cells = changed[first:].any(0)
        assert 1 <= int(cells.sum()) and (changed[first:] <= cells).all()  # only the chosen cells change
    assert len(starts) > 1  # the start is drawn


def test_yes_no_stream_relabels_cluttered_clips_and_needs_the_decoder(instances, decoder):
    chosen = instances[:2]
    clips = [render_solution(x, "correct") for x in chosen]
    frames = torch.from_numpy(np.stack(clips)).permute(0, 1, 4, 2, 3).float() / 255
    labels = _pad_labels([data.question_labels(x, c) for x, c in zip(chosen, clips)])
    assert all(data.question_labels(x, c).min() == 1 for x, c in zip(chosen, clips))  # correct: every answer yes

    def targets(clutter):
        stream = yes_no_stream(frames, torch.tensor([0, 1]), labels, chosen, clips=8, seed=0, blend=0.0,
                               clutter=clutter, decoder=decoder)
        return torch.cat([next(stream)[2] for _ in range(3)])

    assert targets(0.0).min() == 1
    cluttered = targets(1.0)
    assert set(cluttered.tolist()) <= {0.0, 1.0} and cluttered.mean() < 0.8  # the scorer's verdicts, mostly no
    with pytest.raises(ValueError, match="light decoder"):
        next(yes_no_stream(frames, torch.tensor([0, 1]), labels, chosen, clips=8, seed=0, clutter=0.5))


def test_yes_no_stream_draws_the_asked_share_from_the_hard_clips(instances):
    """Clip 0 is correct (every answer yes), clip 1 the wrong target (goal no), of two instances with the
    same number of questions; marked hard, clip 1 fills the share of the batch asked for."""
    chosen = [x for x in instances if len(questions_for(x)) == len(questions_for(instances[0]))][:2]
    clips = [render_solution(chosen[0], "correct"), render_solution(chosen[1], "wrong_target")]
    frames = torch.from_numpy(np.stack(clips)).permute(0, 1, 4, 2, 3).float() / 255
    labels = _pad_labels([data.question_labels(x, c) for x, c in zip(chosen, clips)])
    assert labels[0, 0] == 1 and labels[1, 0] == 0
    questions = len(questions_for(chosen[0]))

    def goal_no_share(hard_share):
        stream = yes_no_stream(frames, torch.tensor([0, 1]), labels, chosen, clips=200, seed=0, blend=0.0,
                               hard=torch.tensor([False, True]), hard_share=hard_share)
        return float((next(stream)[2][::questions] == 0).float().mean())

    assert goal_no_share(1.0) == 1.0 and goal_no_share(0.0) == pytest.approx(0.5, abs=0.1)
    assert goal_no_share(0.2) == pytest.approx(0.2, abs=0.07)
