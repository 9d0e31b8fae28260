"""The micro world's training code: labels agree with the scorer, replies parse, the student's noise map,
and one optimisation step of each model lowers its loss on a fixed batch; the loop clips made for the teacher."""

from __future__ import annotations

import json
from functools import partial

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from peft.tuners.lora import LoraLayer

from benchmarks.micro import render_solution, score_clip, variants
from benchmarks.micro.sets import TEACHER_SEED
from benchmarks.micro.questions import questions_for
from harness.config import CONF_DIR, component_kwargs
from harness.seeding import derive_seed
from harness.types import Queries
from harness.vlmteach.loss import weigh_questions
from harness.vlmteach.method import VlmTeach
from harness.vlmteach.trace import VlmTeachTrace
from harness.teachers import QwenVLTeacher
from harness.teachers.queries import parse_queries
from harness.frames import clip_to_frames, frames_to_clip
from lab.micro.training import data
from lab.micro.training.alignment import alignment_loss, alignment_stream, gradient_cosine
from lab.micro.training.loop import fit
from lab.micro.training.loop_clips import graded_labels, loop_clips, path_clips
from lab.micro.training.measure import (
    WEIGHTS,
    _loss,
    attack,
    dev_subset,
    free_descent,
    gradient_alignment,
    load_student,
    oracle_lora,
    oracle_loss,
    question_reading,
    teacher_subset,
    vlmteach_lr,
)
from lab.micro.training.pipeline import _pad_labels, install, main as pipeline_main, yes_no_stream
from lab.micro.training.robust import perturb_rows, robust_stream
from lab.micro.training.train_student import (
    coherence_loss,
    embed,
    fit_end_state,
    lora_coherence_loss,
    new_student,
    predict_x0,
    row_adapters,
    student_loss,
    target_behaviours,
    tokenize_prompts,
)
from lab.micro.training.train_teacher import new_teacher, synthesis_loss, yes_no_loss
from lab.micro.weights_teacher import build_tokenizer


@pytest.fixture(scope="module")
def instances():
    return data.training_instances(("id", "ood"), 1, seed=11)


def test_labels_are_the_scorers_checks_on_the_same_clip(instances):
    for instance in instances:
        for variant in variants(instance.task):
            clip = render_solution(instance, variant, seed=3)
            labels = data.question_labels(instance, clip)
            scores = score_clip(instance, clip).scores
            qs = questions_for(instance)
            assert qs[0].role == "goal" and labels[0] == scores["goal"]
            for q, label in zip(qs, labels, strict=True):
                assert label == min(scores[c] for c in q.checks)
            if variant == "correct":
                assert labels.tolist() == [1.0] * len(qs)
            if variant == "wrong_target":  # a clean process towards the wrong goal
                assert labels[0] == 0.0 and labels[1:].min() == 1.0


def test_labels_follow_the_scorer_on_a_broken_clip(instances):
    instance = next(x for x in instances if x.task == "reach_target")
    clip = render_solution(instance, "correct").copy()
    clip[5:9] = clip[0]  # the agent jumps back to its start for a few frames
    labels = data.question_labels(instance, clip)
    assert labels[1] == 0.0 == score_clip(instance, clip).scores["continuity"]
    assert labels[0] == 1.0  # still ends on the target


def test_synthesis_reply_parses_back_to_the_questions_after_the_word_tokenizer(instances):
    tokenizer = build_tokenizer()
    for instance in instances:
        reply = data.synthesis_reply(instance)
        ids = tokenizer(reply, add_special_tokens=False)["input_ids"]
        assert tokenizer.unk_token_id not in ids, reply
        decoded = tokenizer.decode(ids)  # what greedy generation of exactly these tokens gives back
        queries = parse_queries(decoded, max_process=3)
        want = [q.text.lower() for q in questions_for(instance)]
        assert queries is not None and [q.lower() for q in queries.all] == want


def test_behaviour_from_noise_is_a_fixed_minority_map():
    noise = torch.randn(20000, 16, 17, 4, 4, generator=torch.Generator().manual_seed(0))
    two = data.behaviour_from_noise(noise, 0.15, torch.full((20000,), 2))
    one = data.behaviour_from_noise(noise, 0.15, torch.full((20000,), 1))
    assert abs((two == 0).float().mean().item() - 0.15) < 0.015
    assert torch.equal(two == 0, one == 0) and one.max() == 1 and two.max() == 2
    changed = noise.clone()
    changed[:, :, 0] = 5.0  # the condition frame's slot is overwritten by the first-frame latent
    assert torch.equal(data.behaviour_from_noise(changed, 0.15, torch.full((20000,), 2)), two)


def test_later_steps_train_on_every_behaviour_equally():
    n = 30000
    noise = torch.randn(n, 16, 17, 1, 1, generator=torch.Generator().manual_seed(0))
    first = torch.arange(n) < n // 3
    num_wrong = torch.tensor([1, 2] * (n // 2))
    chosen = target_behaviours(noise, first, num_wrong, 0.15, torch.Generator().manual_seed(1))
    assert torch.equal(chosen[first], data.behaviour_from_noise(noise, 0.15, num_wrong)[first])
    for k in (1, 2):  # instances with 1 + k behaviours: each drawn with probability 1 / (1 + k)
        later = chosen[~first & (num_wrong == k)]
        counts = torch.bincount(later, minlength=3).float() / len(later)
        assert torch.allclose(counts[: k + 1], torch.full((k + 1,), 1 / (k + 1)), atol=0.02), counts
        assert later.max() == k


def test_degrade_keeps_range_and_shape():
    frames = torch.rand(3, 17, 3, 32, 32)
    out = data.degrade(frames, torch.Generator().manual_seed(0))
    assert out.shape == frames.shape and out.min() >= 0 and out.max() <= 1
    assert not torch.equal(out, frames)


def _fixed_batch_fit(params, loss_of_batch, steps, lr):
    before = loss_of_batch().item()
    fit(params, lambda step: (loss_of_batch(), ""), steps=steps, lr=lr, name="test", log=lambda m: None)
    return before, loss_of_batch().item()


def test_one_student_step_lowers_the_loss_on_a_fixed_batch(instances):
    transformer, text_encoder, tokenizer = new_student(seed=0)
    ids, mask = tokenize_prompts(tokenizer, [x.prompt for x in instances[:4]])
    latents = torch.randn(4, data.MAX_BEHAVIOURS, 16, 17, 4, 4, generator=torch.Generator().manual_seed(1))
    num_wrong = torch.tensor([2, 1, 1, 1])

    def loss():
        text = embed(text_encoder, ids, mask)
        return student_loss(transformer, text, latents, num_wrong, 0.15, torch.Generator().manual_seed(2))

    before, after = _fixed_batch_fit([*transformer.parameters(), *text_encoder.parameters()], loss, 3, 3e-3)
    assert after < before


@pytest.mark.parametrize("loss_fn", [coherence_loss, partial(lora_coherence_loss, max_steps=3)],
                         ids=["weight_nudge", "fitted_lora"])
def test_coherence_losses_train_the_weights_through_the_nudged_forward(instances, loss_fn):
    transformer, text_encoder, tokenizer = new_student(seed=0)
    transformer.requires_grad_(True)
    ids, mask = tokenize_prompts(tokenizer, [x.prompt for x in instances[:4]])
    latents = torch.randn(4, data.MAX_BEHAVIOURS, 16, 17, 4, 4, generator=torch.Generator().manual_seed(1))

    def loss():
        text = embed(text_encoder, ids, mask)
        return loss_fn(transformer, text, latents, torch.Generator().manual_seed(2))

    loss().backward()  # the nudge's own graph is gone: the text encoder is reached through the nudged forward
    assert next(text_encoder.parameters()).grad is not None
    before, after = _fixed_batch_fit([*transformer.parameters(), *text_encoder.parameters()], loss, 3, 3e-3)
    assert after < before


def _first_step_batch(instances) -> tuple:
    """A random micro student with a two-row first-step batch: transformer, x_t, sigma (= 1), text."""
    transformer, text_encoder, tokenizer = new_student(seed=0)
    ids, mask = tokenize_prompts(tokenizer, [x.prompt for x in instances[:2]])
    text = embed(text_encoder, ids, mask).detach()
    x_t = torch.randn(2, 16, 17, 4, 4, generator=torch.Generator().manual_seed(1))
    sigma = torch.ones(2)
    return transformer, x_t, sigma, text


def test_row_adapters_give_each_row_its_own_lora_and_leave_no_trace(instances):
    transformer, x_t, sigma, text = _first_step_batch(instances)
    with torch.no_grad():
        base = predict_x0(transformer, x_t, sigma, text)
        with row_adapters(transformer, 2, torch.Generator().manual_seed(2)) as stacks:
            assert torch.equal(predict_x0(transformer, x_t, sigma, text), base)  # B = 0: nothing added
            for b in stacks[1::2]:
                b[0].normal_(0, 0.1)  # row 0's adapter only
            adapted = predict_x0(transformer, x_t, sigma, text)
        after = predict_x0(transformer, x_t, sigma, text)
    assert (adapted[0] - base[0]).abs().max() > 1e-2
    torch.testing.assert_close(adapted[1], base[1])
    assert torch.equal(after, base)  # the hooks are gone


def test_fit_end_state_moves_each_rows_last_frame_towards_its_own_goal(instances):
    transformer, x_t, sigma, text = _first_step_batch(instances)
    goal = torch.randn(2, 16, 4, 4, generator=torch.Generator().manual_seed(3))

    def distances():
        with torch.no_grad():
            return (predict_x0(transformer, x_t, sigma, text)[:, :, -1] - goal).square().flatten(1).mean(1)

    with row_adapters(transformer, 2, torch.Generator().manual_seed(2)) as stacks:
        before = distances()
        fit_end_state(transformer, stacks, x_t, sigma, text, goal, steps=5)
        after = distances()
        swapped = (predict_x0(transformer, x_t, sigma, text)[:, :, -1] - goal.flip(0)).square().flatten(1).mean(1)
    assert (after < 0.9 * before).all()
    assert (after < swapped).all()  # towards its own goal, not the other row's


def test_one_teacher_step_lowers_both_losses_on_a_fixed_batch(instances, tmp_path):
    teacher = new_teacher(tmp_path / "teacher", seed=0, device="cpu")
    teacher.model.requires_grad_(True).train()
    instance = instances[0]
    clip = torch.from_numpy(render_solution(instance, "wrong_target")).permute(0, 3, 1, 2).float() / 255
    qs = [q.text for q in questions_for(instance)]
    labels = torch.from_numpy(data.question_labels(instance, render_solution(instance, "wrong_target")))
    videos = [clip[::2]] * len(qs)  # 9 frames

    def loss():
        yn, _ = yes_no_loss(teacher, videos, qs, labels)
        syn = synthesis_loss(teacher, [instance.first_frame], [instance.prompt], [data.synthesis_reply(instance)],
                             [False])
        return yn + syn

    before, after = _fixed_batch_fit(list(teacher.model.parameters()), loss, 2, 3e-3)
    assert after < before


def test_install_swaps_both_folders_and_refuses_an_untrained_one(tmp_path):
    trained, weights = tmp_path / "trained", tmp_path / "weights"
    for name, marker in (("student", "model_index.json"), ("teacher", "config.json")):
        (trained / name).mkdir(parents=True)
        (trained / name / marker).write_text("new")
        (weights / name).mkdir(parents=True)
        (weights / name / "old.txt").write_text("old")
    install(trained, weights)
    assert sorted(p.name for p in weights.iterdir()) == ["student", "teacher"]
    assert (weights / "student" / "model_index.json").read_text() == "new"
    assert not (weights / "teacher" / "old.txt").exists()
    with pytest.raises(FileNotFoundError, match="--out"):
        install(tmp_path / "missing", weights)
    assert np.array_equal(sorted(p.name for p in weights.iterdir()), ["student", "teacher"])


def test_frame_batched_encode_and_decode_equal_the_vaes_own_clip_path(instances):
    from diffusers import AutoencoderKLWan

    from lab.micro.training.train_vae import decode_frames, encode_clips, normalise, to_video
    from lab.micro.weights_student import DEFAULT_OUT

    vae = AutoencoderKLWan.from_pretrained(DEFAULT_OUT / "vae")
    clips = torch.from_numpy(np.stack([render_solution(x) for x in instances[:3]]))
    with torch.no_grad():
        raw = vae.encode(to_video(clips)).latent_dist.mode()
        video = vae.decode(raw).sample
    latents = encode_clips(vae, clips)
    torch.testing.assert_close(latents, raw, atol=1e-4, rtol=0)
    torch.testing.assert_close(decode_frames(vae, normalise(vae, raw)), ((video + 1) / 2).transpose(1, 2),
                               atol=1e-4, rtol=0)


def test_vae_training_keeps_the_micro_vae_frame_wise():
    from lab.micro.training.train_vae import new_vae, train_vae
    from harness.students.wan import is_frame_wise

    vae = new_vae(seed=0)
    clips = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (2, 17, 32, 32, 3), dtype=np.uint8))
    before = [p.clone() for p in vae.parameters()]
    train_vae(vae, clips, steps=2, batch=4, lr=1e-3, seed=0, log=lambda m: None)
    assert any(not torch.equal(a, b) for a, b in zip(before, vae.parameters()))
    assert is_frame_wise(vae)  # past taps get no gradient from single frames and stay zero


def test_vae_loss_trains_the_linear_head_even_where_its_output_is_out_of_range():
    from lab.micro.training.train_vae import new_linear_head, new_vae, vae_loss

    vae = new_vae(seed=0)
    head = new_linear_head(vae)
    with torch.no_grad():
        head.proj.bias.fill_(-5.0)  # every pixel far below any frame's value: a clamp would pass no gradient
    clips = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (2, 1, 32, 32, 3), dtype=np.uint8))
    vae_loss(vae, head, clips, torch.Generator().manual_seed(0)).backward()
    assert head.proj.bias.grad is not None and (head.proj.bias.grad < 0).all()  # pushed up towards the frames


def test_loop_clips_run_each_instance_as_its_own_vlmteach_loop(instances):
    """Two instances batched, each with its own LoRA: every snapshot is what ``VlmTeach.optimise`` alone
    shows for that instance (same noise, LoRA seed, questions and optimiser), with the scorer's labels."""
    student = load_student(WEIGHTS / "student")
    teacher = QwenVLTeacher.from_pretrained(path=str(WEIGHTS / "teacher"), device="cpu")
    picked = [instances[0], instances[3]]
    frames, owners, labels, p_goal = loop_clips(student, teacher, picked, lrs=(1e-3,), snapshots=(0, 3), seed=5,
                                                log=lambda m: None)
    assert frames.shape == (4, 17, 3, 32, 32) and owners.tolist() == [0, 1, 0, 1]  # snapshot-major
    # The student is left as it was, LoRA inactive (B = 0): its prediction is snapshot 0's.
    cond = student.encode(picked[0])
    with torch.no_grad():
        again = student.decode(student.predict_x0(cond, student.make_noise(cond, derive_seed(5, "loop", 0)),
                                                  student.sigmas[0]), light=True)
    torch.testing.assert_close(again, frames[0].float(), atol=2e-3, rtol=0)
    for i, x in enumerate(picked):
        seen: dict[int, torch.Tensor] = {}
        goal, *process = (q.text for q in questions_for(x))
        queries, lora_seed = Queries(goal=goal, process=process), derive_seed(5, "lora", i)
        weighted = weigh_questions(queries, 0.5)
        trace = VlmTeachTrace.start(queries, "fixed", weighted, "first", lora_seed)
        cond = student.encode(x)
        VlmTeach(lr=1e-3, early_stop=False, num_steps=3).optimise(
            student, teacher, cond, student.make_noise(cond, derive_seed(5, "loop", i)), 5, lora_seed, weighted, trace,
            observe=seen.__setitem__)
        moved = (seen[3].clamp(0, 1) - seen[0].clamp(0, 1)).abs().mean()
        assert moved > 2e-2  # three updates against the teacher move the prediction
        torch.testing.assert_close(frames[i].float(), seen[0].clamp(0, 1), atol=2e-3, rtol=0)
        # AdamW's first steps are sign-like: where a gradient coordinate is near zero, float-level differences
        # between the batched and the single backward can flip its update, and the CPU's kernels decide which
        # (up to 0.016 in a pixel). So after the updates the snapshot is compared on average: it is within a
        # tenth of how far the loop moved, whereas another instance's adapter would put it ~0.37 away.
        assert (frames[2 + i].float() - seen[3].clamp(0, 1)).abs().mean() < moved / 10
        for row, step, tolerance in ((i, 0, 1e-3), (2 + i, 3, 5e-3)):  # the same, for the teacher's answer
            assert p_goal[row].item() == pytest.approx(trace.per_step[step].p_yes[0], abs=tolerance)
    for clip, owner, label in zip(frames, owners, labels):
        np.testing.assert_array_equal(label, data.question_labels(picked[owner], frames_to_clip(clip.float())))


def test_path_clips_approach_the_correct_video_and_grade_a_rejected_goal(instances):
    """The oracle's path lowers the prediction's distance to the correct video; a clip whose goal the scorer
    rejects gets goal_credit times its share of the way there, every other label is the scorer's."""
    student = load_student(WEIGHTS / "student")
    picked = [instances[0], instances[3]]
    frames, owners, labels = path_clips(student, picked, lrs=(1e-3,), snapshots=(0, 4), seed=5, goal_credit=0.4,
                                        log=lambda m: None)
    assert frames.shape == (4, 17, 3, 32, 32) and owners.tolist() == [0, 1, 0, 1]
    for i, x in enumerate(picked):
        correct = clip_to_frames(data.behaviour_clips(x)[0])
        before, after = ((frames[row].float() - correct).square().mean() for row in (i, 2 + i))
        assert after < before  # four oracle steps move it towards the correct video
        for row, progress in ((i, 0.0), (2 + i, float(1 - after / before))):
            scorer = data.question_labels(x, frames_to_clip(frames[row].float()))
            np.testing.assert_array_equal(labels[row][1:], scorer[1:])
            expected = 1.0 if scorer[0] else 0.4 * progress
            assert labels[row][0] == pytest.approx(expected, abs=5e-3)
    _, _, hard = path_clips(student, picked, lrs=(1e-3,), snapshots=(4,), seed=5, log=lambda m: None)
    assert all(set(lab.tolist()) <= {0.0, 1.0} for lab in hard)  # goal_credit 0: the scorer's labels


def test_graded_labels_credit_progress_only_below_the_goal(instances):
    x = instances[0]
    wrong, correct = (clip_to_frames(render_solution(x, b)) for b in ("wrong_target", "correct"))
    assert graded_labels(x, correct, progress=0.2, goal_credit=0.45)[0] == 1.0  # a reached goal stays a yes
    assert graded_labels(x, wrong, progress=0.5, goal_credit=0.45)[0] == pytest.approx(0.225)
    assert graded_labels(x, wrong, progress=1.7, goal_credit=0.45)[0] == pytest.approx(0.45)  # clamped
    assert graded_labels(x, wrong, progress=-0.3, goal_credit=0.45)[0] == 0.0  # moved away: a plain no


def test_yes_no_stream_blends_clips_and_labels_only_when_asked(instances):
    clips = [render_solution(x, b) for x in instances[:2] for b in ("correct", "wrong_target")]
    frames = torch.from_numpy(np.stack(clips)).permute(0, 1, 4, 2, 3).float() / 255
    owner = torch.tensor([0, 0, 1, 1])
    labels = _pad_labels([data.question_labels(x, c) for x, c in zip([instances[0]] * 2 + [instances[1]] * 2, clips)])

    def targets(blend, scribble=0.0):
        stream = yes_no_stream(frames, owner, labels, instances[:2], clips=16, seed=0, blend=blend, scribble=scribble)
        return torch.cat([next(stream)[2] for _ in range(4)])

    hard, soft = targets(0.0), targets(0.4)
    assert set(hard.tolist()) <= {0.0, 1.0}  # hard labels only
    assert ((soft > 0) & (soft < 1)).any()  # blended clips carry blended labels
    # Painted clips are relabelled by the scorer: hard labels even where every clip is blended, and the
    # correct clips (all yes before) now get some no.
    painted = targets(1.0, scribble=1.0)
    assert set(painted.tolist()) <= {0.0, 1.0} and painted.mean() < hard.mean()


def test_scribble_paints_whole_cell_regions_from_a_frame_on(instances):
    frames = torch.from_numpy(render_solution(instances[0], "correct")).permute(0, 3, 1, 2).float() / 255
    for seed in range(5):
        out = data.scribble(frames, torch.Generator().manual_seed(seed))
        assert out.shape == frames.shape and 0 <= out.min() and out.max() <= 1
        changed = (out != frames).any(1)  # [T, H, W]
        first = int(changed.any((1, 2)).nonzero()[0])
        assert changed[first:].any((1, 2)).all()  # painted from a frame to the end
        assert not changed[:first].any()
        cells = changed.reshape(len(frames), 4, 8, 4, 8).any(2).any(3)  # [T, 4, 4] cells touched
        assert 1 <= int(cells[-1].sum()) <= 12


def test_first_per_cell_takes_the_first_instances_of_every_split_and_task():
    instances = data.training_instances(("id", "ood"), 3, seed=11)
    picked = data.first_per_cell(instances, 2)
    cells = sorted({(x.split, x.task) for x in instances})
    cell = [(x.split, x.task) for x in instances]
    assert [cell[i] for i in picked] == [c for c in cells for _ in range(2)]
    for i in picked:  # the first two of its cell: no earlier instance of the cell was skipped
        assert cell[:i].count(cell[i]) < 2


def test_free_descent_starts_at_the_wrong_behaviour_and_descends():
    start = free_descent(WEIGHTS / "student", per_cell=1, steps=0)
    assert start["instances"] == 8 and start["relative_latent_distance"] == pytest.approx(1.0)
    assert start["solved"] == 0  # a wrong behaviour is never a solution
    fitted = free_descent(WEIGHTS / "student", per_cell=1, steps=20)
    assert fitted["pixel_mse"] < 0.8 * start["pixel_mse"]
    with pytest.raises(ValueError, match="decoder"):
        free_descent(WEIGHTS / "student", per_cell=1, decoder="pixels")


def test_attack_compares_the_teachers_p_yes_with_the_scorer_before_and_after_the_loop():
    still = attack(WEIGHTS / "student", WEIGHTS / "teacher", per_cell=1, steps=0)
    assert still["instances"] == 8 == len(still["rows"])
    for row in still["rows"]:  # no update: before and after are the same prediction
        assert row["goal_p_yes"][0] == row["goal_p_yes"][1] and 0 <= row["goal_p_yes"][0] <= 1
        assert row["goal_light"][0] == row["goal_light"][1]
    moved = attack(WEIGHTS / "student", WEIGHTS / "teacher", per_cell=1, lr=1e-2, steps=2)
    for a, b in zip(moved["rows"], still["rows"], strict=True):
        assert a["id"] == b["id"] and a["goal_p_yes"][0] == pytest.approx(b["goal_p_yes"][0], abs=1e-5)
    assert max(abs(a["goal_p_yes"][1] - b["goal_p_yes"][1]) for a, b in zip(moved["rows"], still["rows"])) > 1e-3
    assert moved["mean"]["goal_p_yes"][1] == pytest.approx(np.mean([r["goal_p_yes"][1] for r in moved["rows"]]))


def test_attack_on_the_teachers_training_set_uses_its_instances_not_the_dev_sets():
    own_set = teacher_subset(1)
    dev_set = dev_subset(1)[1]
    assert [x.id for x in own_set] == [x.id for x in dev_set]  # ids name a cell and an index, not a seed
    assert all(not np.array_equal(a.first_frame, b.first_frame) for a, b in zip(own_set, dev_set))  # scenes
    seeded = data.training_instances(("id", "ood"), 1, TEACHER_SEED)
    assert sorted(x.prompt for x in own_set) == sorted(x.prompt for x in seeded)
    own = attack(WEIGHTS / "student", WEIGHTS / "teacher", per_cell=1, steps=0, on="teacher")
    dev = attack(WEIGHTS / "student", WEIGHTS / "teacher", per_cell=1, steps=0)
    assert own["on"] == "teacher" and dev["on"] == "dev" and own["instances"] == 8
    assert [r["goal_p_yes"][0] for r in own["rows"]] != [r["goal_p_yes"][0] for r in dev["rows"]]
    with pytest.raises(ValueError, match="'dev' or 'teacher'"):
        attack(WEIGHTS / "student", WEIGHTS / "teacher", per_cell=1, steps=0, on="train")


def test_alignment_stream_never_asks_a_correct_video_to_point_to_itself(instances):
    x = instances[0]
    correct, wrong = (clip_to_frames(render_solution(x, b)) for b in ("correct", "wrong_target"))
    stream = alignment_stream(torch.stack([correct, wrong]), torch.tensor([0, 0]), [x], clips=4, seed=0)
    clips, targets, owners = next(stream)
    assert len(clips) == 4 and owners == [x] * 4
    assert torch.equal(clips, wrong.expand_as(clips)) and torch.equal(targets, correct.expand_as(targets))


def test_an_alignment_step_turns_the_teachers_gradient_towards_the_correct_videos(instances):
    """Double backpropagation trains the teacher's input gradient: a few steps on a fixed batch of wrong
    behaviours raise the cosine between it and the way to the correct video."""
    teacher = QwenVLTeacher.from_pretrained(path=str(WEIGHTS / "teacher"), device="cpu")
    picked = instances[:4]
    wrong = torch.stack([clip_to_frames(render_solution(x, "wrong_target")) for x in picked])
    correct = torch.stack([clip_to_frames(data.behaviour_clips(x)[0]) for x in picked])
    teacher.model.requires_grad_(False)
    before = gradient_cosine(teacher, wrong, correct, picked)
    assert before.shape == (4,) and (before.abs() <= 1).all()
    teacher.model.requires_grad_(True)
    loss = alignment_loss(teacher, iter([(wrong, correct, picked)] * 5), weight=1.0)
    fit(list(teacher.model.parameters()), lambda step: loss(), steps=5, lr=1e-3, name="align", log=lambda m: None)
    teacher.model.requires_grad_(False)
    assert gradient_cosine(teacher, wrong, correct, picked).mean() > before.mean() + 0.05


def _shipped_teacher_and_frozen_prediction(x):
    """The shipped teacher, and the shipped student's light-decoded one-step prediction of evaluation instance
    ``x`` from the noise measure.py draws for it (``derive_seed(0, x.id)``)."""
    student = load_student(WEIGHTS / "student")
    cond = student.encode(x)
    with torch.no_grad():
        frames = student.decode(student.predict_x0(cond, student.make_noise(cond, derive_seed(0, x.id)),
                                                   student.sigmas[0]), light=True)
    return QwenVLTeacher.from_pretrained(path=str(WEIGHTS / "teacher"), device="cpu"), frames


def test_gradient_alignment_measures_the_cosine_the_alignment_loss_trains():
    report = gradient_alignment(WEIGHTS / "student", WEIGHTS / "teacher", per_cell=1)
    assert report["instances"] == 8 == len(report["rows"])
    x = dev_subset(1)[1][0]
    teacher, frames = _shipped_teacher_and_frozen_prediction(x)
    correct = clip_to_frames(data.behaviour_clips(x)[0])
    expected = gradient_cosine(teacher, frames[None], correct[None], [x])
    assert report["rows"][0]["pixels"] == pytest.approx(float(expected[0]), abs=1e-4)
    assert report["rows"][0]["oracle_mse"] == pytest.approx(float((frames - correct).square().mean()), rel=1e-4)
    for row in report["rows"]:
        assert all(-1 <= row[k] <= 1 for k in ("pixels", "latents", "lora"))
    assert len({round(r["lora"], 6) for r in report["rows"]}) == 8  # one per instance, not one repeated
    # After loop steps the prediction has moved: the cosines are taken where the loop is, not where it began.
    after = gradient_alignment(WEIGHTS / "student", WEIGHTS / "teacher", per_cell=1, loop_steps=2, lr=1e-2)
    assert after["loop_steps"] == 2 and after["lr"] == 1e-2
    assert all(a["oracle_mse"] != pytest.approx(b["oracle_mse"], rel=1e-3) for a, b in zip(after["rows"], report["rows"]))


def test_oracle_reports_the_teachers_goal_answer_on_the_frames_it_checks():
    report = oracle_lora(WEIGHTS / "student", 1, lr=1e-3, steps=10, teacher_dir=WEIGHTS / "teacher")
    assert report["checked_at_steps"] == [0, 10] and len(report["goal_p_yes"]) == report["instances"] == 8
    # At step 0 the LoRA adds nothing: the answer is the teacher's on the unadapted light-decoded prediction.
    _, chosen = dev_subset(1)
    x = chosen[0]
    teacher, light = _shipped_teacher_and_frozen_prediction(x)
    expected = teacher.p_yes(light, [teacher.synthesize_queries(x).goal])[0]
    assert report["goal_p_yes"][x.id][0] == pytest.approx(expected, abs=1e-5)
    assert report["goal_p_yes"][x.id][1] != pytest.approx(expected, abs=1e-3)  # ten oracle steps change the frames
    assert json.loads(json.dumps(report))["frames"] == "all"  # the report is what --out writes
    per_instance = report["final_score_per_instance"]
    assert sorted(per_instance) == sorted(i.id for i in chosen)  # every instance, by id: splits can be told apart
    assert np.mean(list(per_instance.values()), axis=0) == pytest.approx(report["mean_score"]["final"])


def test_goal_only_oracle_asks_for_the_last_frame_alone():
    student = load_student(WEIGHTS / "student")
    x = dev_subset(1)[1][0]
    cond = student.encode(x)
    with torch.no_grad():
        x0 = student.predict_x0(cond, student.make_noise(cond, 0), student.sigmas[0])
    frames = clip_to_frames(data.behaviour_clips(x)[0])
    early, last = x0.clone(), x0.clone()
    early[:, :, 1:-1] += 0.5  # every generated frame but the last
    last[:, :, -1] += 0.5
    for space, target in (("pixel", frames), ("latent", x0 + 0.1)):
        def loss(latents, which):
            return float(oracle_loss(student, latents, target, space, which))
        assert loss(early, "last") == pytest.approx(loss(x0, "last"), abs=1e-7)
        assert loss(last, "last") != pytest.approx(loss(x0, "last"), abs=1e-4)
        assert loss(early, "all") != pytest.approx(loss(x0, "all"), abs=1e-4)
    with pytest.raises(ValueError, match="frames must be one of"):
        oracle_lora(WEIGHTS / "student", 1, frames="first")


def test_load_student_overrides_only_the_lora_keys_it_is_given():
    default = load_student(WEIGHTS / "student")
    cross = load_student(WEIGHTS / "student", lora={"target_modules": ["attn2.to_v"], "scale": 2.0})
    layers = {name: m for name, m in cross.transformer.named_modules() if isinstance(m, LoraLayer)}
    assert len(layers) == 6 and all(name.endswith("attn2.to_v") for name in layers)  # one per block
    assert all(m.scaling["tto"] == pytest.approx(2.0) for m in layers.values())  # the scale asked for, at rank 16
    assert sum(isinstance(m, LoraLayer) for m in default.transformer.modules()) > len(layers)


def _rendered_rows(x) -> tuple[list[torch.Tensor], list[str], torch.Tensor]:
    clips, labels = data.variant_clips(x, np.random.default_rng(0))
    rows = [(clip_to_frames(c), q.text, float(label)) for c, labs in zip(clips[:2], labels[:2])
            for q, label in zip(questions_for(x), labs)]
    videos, questions, targets = zip(*rows)
    return list(videos), list(questions), torch.tensor(targets)


def test_robust_rows_move_within_the_ball_against_their_label(instances):
    teacher = QwenVLTeacher.from_pretrained(path=str(WEIGHTS / "teacher"), device="cpu")
    videos, questions, labels = _rendered_rows(instances[0])
    moved = perturb_rows(teacher, videos, questions, labels, epsilon=1.0)
    for new, old in zip(moved, videos, strict=True):
        assert float((new - old).norm()) <= 1.0 + 1e-4
        assert torch.equal(new[0], old[0])  # the condition frame stays
        assert new.min() >= 0 and new.max() <= 1
    with torch.no_grad():
        before, _ = yes_no_loss(teacher, videos, questions, labels)
        after, _ = yes_no_loss(teacher, moved, questions, labels)
    assert after > 1.5 * before  # relative: a more robust teacher (session 14's) moves less than the former


def test_robust_stream_moves_a_share_of_rows_and_keeps_questions_and_labels(instances):
    teacher = QwenVLTeacher.from_pretrained(path=str(WEIGHTS / "teacher"), device="cpu")
    videos, questions, labels = _rendered_rows(instances[0])
    out_videos, out_questions, out_labels = next(robust_stream(teacher, iter([(videos, questions, labels)]),
                                                               epsilon=1.0, seed=0, share=0.5))
    changed = [not torch.equal(a, b) for a, b in zip(out_videos, videos, strict=True)]
    assert 0 < sum(changed) < len(videos)
    assert out_questions == questions and torch.equal(out_labels, labels)
    with pytest.raises(ValueError, match="radius must be positive"):
        next(robust_stream(teacher, iter([(videos, questions, labels)]), epsilon=0.0, seed=0))


def test_measure_defaults_to_the_learning_rate_make_eval_gives_vlmteach():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["method=vlmteach"])  # the defaults: micro student
    method = instantiate(component_kwargs(cfg, "method"), _convert_="all")
    assert vlmteach_lr(None) == method.optimizer_kwargs["lr"] != VlmTeach().optimizer_kwargs["lr"]
    assert vlmteach_lr(1e-3) == 1e-3


@pytest.mark.parametrize("argv", [["--coherence-lora-steps", "5"], ["--coherence", "1", "--coherence-lora-steps", "0"]])
def test_pipeline_refuses_coherence_lora_steps_that_would_do_nothing(argv, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr("sys.argv", ["pipeline.py", "--out", str(tmp_path / "run"), *argv])
    with pytest.raises(SystemExit):
        pipeline_main()
    assert "--coherence-lora-steps K needs K >= 1 and --coherence W > 0" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before any work


def test_measure_loss_weighs_the_template_answers_as_vlmteach_does():
    p_yes = [0.9, 0.5, 0.2]  # goal, then two process questions: 0.5 and 0.25 each
    assert _loss(p_yes) == pytest.approx(-(0.5 * np.log(0.9) + 0.25 * np.log(0.5) + 0.25 * np.log(0.2)))


def test_question_reading_reads_the_frozen_prediction_against_both_labels():
    report = question_reading(WEIGHTS / "student", WEIGHTS / "teacher", per_cell=2)
    _, chosen = dev_subset(2)
    assert report["instances"] == len(chosen) == 16
    student = load_student(WEIGHTS / "student")
    cell = [x for x in chosen if (x.split, x.task) == (chosen[0].split, chosen[0].task)]
    one_step, final = [], []
    with torch.no_grad():
        for x in cell:
            cond, seed = student.encode(x), derive_seed(0, x.id)
            noise = student.make_noise(cond, seed)
            light = student.decode(student.predict_x0(cond, noise, student.sigmas[0]), light=True)
            one_step.append(data.question_labels(x, frames_to_clip(light)))
            final.append(data.question_labels(x, frames_to_clip(student.decode(student.sample(cond, noise, seed)))))
    for i, q in enumerate(questions_for(cell[0])):
        row = report["questions"][f"{cell[0].split}/{cell[0].task}/{q.role}:{'+'.join(q.checks)}"]
        assert row["n"] == 2
        assert row["yes_rate_one_step"] == pytest.approx(np.mean([labels[i] for labels in one_step]))
        assert row["yes_rate_final"] == pytest.approx(np.mean([labels[i] for labels in final]))
        assert row["labels_agree"] == pytest.approx(np.mean([a[i] == b[i] for a, b in zip(one_step, final)]))
    for value in report["loss_score_concordance"].values():
        assert value is None or 0.0 <= value <= 1.0
