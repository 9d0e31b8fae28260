"""vlmteach's batched loop (``method.batch_instances``) against each instance's own run, on the micro student and
teacher (the real Wan and Qwen-VL classes, fp32 on the CPU).

Equality is up to float rounding, not bit for bit: the batched adapter (``WanStudent.batched_lora``) and the batched
DiT sum the same products in another order. Measured on this CPU (fp32, 1 thread): the first evaluation (B = 0) is
bit-equal; over up to six updates at lr 3e-4 losses differ by at most 5.3e-6, P(Yes) by 4.5e-6, gradient norms by
2.0e-5 relative, and of the final videos one uint8 value in 209k by one level. AdamW's first steps are sign-like, so
a gradient coordinate near zero can flip with rounding; the tolerances below leave room for other CPUs' kernels and
stay far below what another instance's LoRA or noise gives.
"""

from __future__ import annotations

import weakref
from dataclasses import replace

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from test_vlmteach_method import NanGradient

from benchmarks.micro import generate_instances
from harness.config import CONF_DIR, component_kwargs, config_hash
from harness.method import MethodContext, generate_clip
from harness.runner import generation_groups, plan
from harness.seeding import derive_seed
from harness.sinks import NullSink
from harness.types import Instance, MethodFailed, MethodOutput, UserError
from harness.vlmteach import OptimisationDiverged, VlmTeach
from tests.cli import compose_runner, micro_student_and_teacher

SEED = 11
LOSS_TOL = 2e-4  # abs, on losses and P(Yes)
GRAD_NORM_RTOL = 2e-3


@pytest.fixture(scope="module")
def models():
    return micro_student_and_teacher()


@pytest.fixture(scope="module")
def instances():
    return generate_instances("id", 1, seed=3)  # one per family, I2V, 17 x 32 x 32


def contexts(models, instances):
    student, teacher = models
    return [MethodContext(student=student, teacher=teacher, bench=None, seed=derive_seed(SEED, x.id)) for x in instances]


def alone(method, models, instances):
    """Each instance's own run, as with batch_instances=1; a failure is kept as the exception."""
    outcomes = []
    for instance, ctx in zip(instances, contexts(models, instances)):
        try:
            outcomes.append(method.run(instance, ctx))
        except MethodFailed as failed:
            outcomes.append(failed)
    return outcomes


def assert_same_run(batched: MethodOutput, own: MethodOutput) -> None:
    """The batched outcome is the instance's own run: queries, seed, steps, early stop, numbers within tolerance."""
    b, o = batched.trace, own.trace
    assert (b.queries, b.loss_questions, b.lora_seed, b.frame_indices) == (o.queries, o.loss_questions, o.lora_seed, o.frame_indices)
    assert (batched.steps, b.steps_used, b.stopped_early, len(b.per_step)) == (own.steps, o.steps_used, o.stopped_early, len(o.per_step))
    for mine, theirs in zip(b.per_step, o.per_step, strict=True):
        assert mine.loss == pytest.approx(theirs.loss, abs=LOSS_TOL)
        assert mine.p_yes == pytest.approx(theirs.p_yes, abs=LOSS_TOL)
        assert (mine.grad_norm is None) == (theirs.grad_norm is None)
        if mine.grad_norm is not None:
            assert mine.grad_norm == pytest.approx(theirs.grad_norm, rel=GRAD_NORM_RTOL)
    assert b.final_loss == pytest.approx(o.final_loss, abs=LOSS_TOL)
    assert batched.clip.shape == own.clip.shape
    assert np.abs(batched.clip.astype(int) - own.clip.astype(int)).max() <= 1  # uint8 levels


def test_each_instance_of_a_batch_runs_as_it_does_alone(models, instances):
    """Three instances whose loops end apart: one stops before any update, one early after a few, one runs the
    whole budget. Each keeps its own questions, noise, LoRA, clipping and stop."""
    picked = [instances[0], instances[1], instances[3]]
    settings = dict(lr=3e-4, num_steps=6, tau=0.57)  # losses at least 0.019 from tau at every evaluation
    own = alone(VlmTeach(**settings), models, picked)
    assert [(o.steps, o.trace.stopped_early) for o in own] == [(0, True), (4, True), (6, False)]  # the premise
    batched = VlmTeach(**settings, batch_instances=3).run_many(picked, contexts(models, picked))
    for mine, theirs in zip(batched, own, strict=True):
        assert_same_run(mine, theirs)
    assert set(batched[1].timings) == set(own[1].timings)


def test_the_student_is_left_as_its_base_model(models, instances):
    student = models[0]
    picked = instances[:2]
    frozen = [generate_clip(student, x, ctx.seed) for x, ctx in zip(picked, contexts(models, picked))]
    VlmTeach(lr=1e-2, num_steps=2, early_stop=False, batch_instances=2).run_many(picked, contexts(models, picked))
    after = [generate_clip(student, x, ctx.seed) for x, ctx in zip(picked, contexts(models, picked))]
    assert all(np.array_equal(a, b) for a, b in zip(after, frozen, strict=True))


def test_an_instance_that_diverges_fails_alone(models, instances, monkeypatch):
    """One instance's loss turns NaN at step 1, another's gradient at step 0: each is its own error with its trace
    so far, and the third runs on as it does alone."""
    teacher = models[1]
    original = teacher.yes_nll
    nan_loss, nan_grad, fine = instances[0], instances[1], instances[3]
    method = VlmTeach(lr=3e-4, num_steps=3, early_stop=False, batch_instances=3)
    goals = {x.id: method.begin(x, contexts(models, [x])[0]).weighted.questions[0] for x in (nan_loss, nan_grad)}
    calls = {goal: 0 for goal in goals.values()}

    def poisoned(frames, questions, clock=None):
        nll = original(frames, questions, clock)
        if questions[0] == goals[nan_grad.id]:
            return NanGradient.apply(nll)
        if questions[0] == goals[nan_loss.id]:
            calls[questions[0]] += 1
            return nll * float("nan") if calls[questions[0]] == 2 else nll
        return nll

    monkeypatch.setattr(teacher, "yes_nll", poisoned)
    loss_failed, grad_failed, ok = method.run_many([nan_loss, nan_grad, fine], contexts(models, [nan_loss, nan_grad, fine]))
    assert isinstance(loss_failed, MethodFailed) and isinstance(loss_failed.cause, OptimisationDiverged)
    assert str(loss_failed.cause) == "vlmteach: loss is nan at step 1" and len(loss_failed.trace.per_step) == 2
    assert isinstance(grad_failed, MethodFailed) and isinstance(grad_failed.cause, OptimisationDiverged)
    assert str(grad_failed.cause).startswith("vlmteach: gradient norm is nan at step 0")
    assert len(grad_failed.trace.per_step) == 1 and grad_failed.cause.__traceback__ is not None
    monkeypatch.undo()
    (own,) = alone(VlmTeach(lr=3e-4, num_steps=3, early_stop=False), models, [fine])
    assert_same_run(ok, own)


class _Saved:
    """What the teacher's autograd graph saves, made weakly referable (so a test sees when the graph lets go)."""

    __slots__ = ("tensor", "__weakref__")

    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor


def test_the_batch_holds_one_judges_graph_at_a_time(models, instances, monkeypatch):
    """Memory: each member's teacher graph is freed (its gradient taken) before the next member is judged, so the
    batch's peak holds k DiT graphs and one judge's, not k of each."""
    teacher = models[1]
    original = teacher.yes_nll
    saved: list[weakref.ref] = []  # everything any teacher graph saved
    alive_at_call: list[int] = []  # per judge call: how much of the earlier graphs is still held

    def pack(tensor):
        held = _Saved(tensor)
        saved.append(weakref.ref(held))
        return held

    def watched(frames, questions, clock=None):
        alive_at_call.append(sum(ref() is not None for ref in saved))
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda held: held.tensor):
            return original(frames, questions, clock)

    monkeypatch.setattr(teacher, "yes_nll", watched)
    picked = instances[:3]
    VlmTeach(lr=3e-4, num_steps=1, early_stop=False, batch_instances=3).run_many(picked, contexts(models, picked))
    assert saved and len(alive_at_call) == 6  # two evaluations of three members; the first one's graphs saved
    assert alive_at_call == [0] * 6


def test_a_failure_before_the_loop_is_the_instances_own(models, instances, monkeypatch):
    teacher = models[1]
    original = teacher.synthesize_queries

    def broken_for_one(instance, max_process=3):
        if instance.id == instances[0].id:
            raise RuntimeError("no questions")
        return original(instance, max_process=max_process)

    monkeypatch.setattr(teacher, "synthesize_queries", broken_for_one)
    failed, ok = VlmTeach(num_steps=1, batch_instances=2).run_many(instances[:2], contexts(models, instances[:2]))
    assert isinstance(failed, RuntimeError) and str(failed) == "no questions"
    assert isinstance(ok, MethodOutput) and ok.steps <= 1


def test_a_student_without_a_batched_lora_is_told(models, instances):
    ctxs = [MethodContext(student=object(), teacher=models[1], bench=None, seed=0)] * 2
    with pytest.raises(UserError, match="needs a student with a batched LoRA .* set method.batch_instances=1"):
        VlmTeach(batch_instances=2).run_many(instances[:2], ctxs)


def test_batch_instances_needs_the_first_step_prediction():
    with pytest.raises(ValueError, match="batch_instances > 1 needs opt_step=first"):
        VlmTeach(opt_step="last", batch_instances=2)
    with pytest.raises(ValueError, match="batch_instances must be >= 1"):
        VlmTeach(batch_instances=0)


def test_text_to_video_with_guidance_batches_both_forwards(models, instances):
    """No first frame (T2V) and classifier-free guidance: the negative prompt's forward runs batched as well."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["student.device=cpu", "student.guidance_scale=2.0",
                                                       "student.negative_prompt=blurry static"])
    guided = (instantiate(component_kwargs(cfg, "student"), _convert_="all"), models[1])
    picked = [replace(x, first_frame=None) for x in instances[:2]]
    settings = dict(lr=3e-4, num_steps=3, early_stop=False)
    own = alone(VlmTeach(**settings), guided, picked)
    batched = VlmTeach(**settings, batch_instances=2).run_many(picked, contexts(guided, picked))
    for mine, theirs in zip(batched, own, strict=True):
        assert_same_run(mine, theirs)


# ----- through the runner and the CLI -----

def shaped(frames: int, first_frame: bool) -> Instance:
    return Instance(id=f"{frames}-{first_frame}", bench="b", task="t", category="c", split="s", prompt="p",
                    num_frames=frames, height=32, width=32, fps=8,
                    first_frame=np.zeros((32, 32, 3), np.uint8) if first_frame else None)


def test_batches_are_runs_of_consecutive_instances_of_one_shape():
    a, b, t2v = shaped(17, True), shaped(9, True), shaped(17, False)
    todo = [a, a, a, b, a, t2v, t2v]
    assert [[x.id for x in g] for g in generation_groups(todo, 2)] == [
        [a.id, a.id], [a.id], [b.id], [a.id], [t2v.id, t2v.id]]
    assert [len(g) for g in generation_groups(todo, 1)] == [1] * 7


def frozen_runner(tmp_path, batch: int, name: str):
    runner = compose_runner(tmp_path, "limit=5", f"run_name={name}")
    runner.method.batch_instances = batch  # frozen's run_many: one run after another, each outcome its own
    return runner


def test_the_runner_hands_batches_to_run_many_and_records_each_instance(tmp_path, monkeypatch):
    alone_dir = frozen_runner(tmp_path, 1, "alone").execute(NullSink())
    runner = frozen_runner(tmp_path, 2, "batched")
    groups = []
    original = runner.method.run_many
    monkeypatch.setattr(runner.method, "run_many", lambda xs, ctxs: groups.append([x.id for x in xs]) or original(xs, ctxs))
    latest = runner.execute(NullSink()).latest_records()
    ids = sorted(latest)
    assert groups == [ids[0:2], ids[2:4]]  # the fifth alone, through run
    for iid, record in alone_dir.latest_records().items():  # the same videos and records, timings aside
        mine = latest[iid]
        assert {k: v for k, v in mine.items() if k != "timings"} == {k: v for k, v in record.items() if k != "timings"}
        assert ("batch_s" in mine["timings"]) == (iid != ids[4]) and "batch_s" not in record["timings"]


def test_a_batch_that_fails_as_a_whole_runs_one_at_a_time(tmp_path, monkeypatch, caplog):
    runner = frozen_runner(tmp_path, 5, "oom")
    ids = [x.id for x in plan(runner.bench, 5)]
    original = runner.method.run

    def out_of_memory(xs, ctxs):
        raise torch.OutOfMemoryError("CUDA out of memory (injected)")

    def fails_alone_too(instance, ctx):
        if instance.id == ids[1]:
            raise torch.OutOfMemoryError("out of memory alone too")
        return original(instance, ctx)

    monkeypatch.setattr(runner.method, "run_many", out_of_memory)
    monkeypatch.setattr(runner.method, "run", fails_alone_too)
    latest = runner.execute(NullSink()).latest_records()
    assert "a batch of 5 instances failed as a whole (OutOfMemoryError: CUDA out of memory (injected)" in caplog.text
    assert [latest[i]["status"] for i in ids] == ["ok", "error", "ok", "ok", "ok"]
    assert latest[ids[1]]["error"].startswith("OutOfMemoryError: out of memory alone too")
    assert runner.unfinished == {ids[1]: "error"}


def test_an_instance_failing_in_a_batch_is_its_own_error(tmp_path, monkeypatch):
    runner = frozen_runner(tmp_path, 3, "one-fails")
    ids = [x.id for x in plan(runner.bench, 5)]
    original = runner.method.run
    calls = []

    def fails_for_one(instance, ctx):
        calls.append(instance.id)
        if instance.id == ids[0]:
            raise RuntimeError("only this one")
        return original(instance, ctx)

    monkeypatch.setattr(runner.method, "run", fails_for_one)
    latest = runner.execute(NullSink()).latest_records()
    assert calls == ids  # each ran once: no retry of the batch
    assert [latest[i]["status"] for i in ids] == ["error", "ok", "ok", "ok", "ok"]
    assert latest[ids[0]]["error"].startswith("RuntimeError: only this one")


def test_batch_instances_is_hashed_only_above_one():
    def chash(*overrides):
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return config_hash(compose(config_name="config", overrides=["method=vlmteach", *overrides]))

    # At 1 the key changes nothing: runs made before it existed keep their hash (and run directory).
    assert chash() == chash("~method.batch_instances") == chash("method.batch_instances=1")
    # Above 1 the loop runs batched: equal up to float rounding, not bit for bit, so a run of its own.
    assert chash("method.batch_instances=2") != chash()
