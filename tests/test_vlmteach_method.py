"""The vlmteach loop on the real micro student and teacher (shipped weights, shipped Hydra configs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.micro import generate_instances
from harness.method import MethodContext, generate_clip
from harness.seeding import derive_seed
from harness.types import MethodFailed, Queries
from harness.vlmteach import OptimisationDiverged, VlmTeach, VlmTeachTrace
from harness.vlmteach.frames import select_frames
from harness.vlmteach.loss import weigh_questions
from tests.cli import micro_student_and_teacher

FIXED = {"goal": "Is the yellow square on the red cell at the end?", "process": ["Does the yellow square stay whole?", "Do the other squares stay put?"]}
SEED = 11
# A large step size so that two or three updates visibly move the LoRA (the paper's 5e-5 barely does).
FAST = dict(lr=1e-2, fixed_queries=FIXED)


@pytest.fixture(scope="module")
def models():
    return micro_student_and_teacher()


@pytest.fixture(scope="module")
def instances():
    return generate_instances("id", 1, seed=3)[:2]


def run(method, models, instance, seed=SEED):
    student, teacher = models
    return method.run(instance, MethodContext(student=student, teacher=teacher, bench=None, seed=seed))


def numbers(trace):
    """The trace without wall times, for exact comparisons."""
    return [(step.loss, step.p_yes, step.grad_norm) for step in trace.per_step]


def lora_values(student):
    return [p.detach().clone() for p in student.lora_parameters()]


def test_gradient_reaches_every_lora_weight_and_nothing_else_changes(models, instances, monkeypatch):
    student, teacher = models
    frozen = {name: {k: v.clone() for k, v in m.state_dict().items() if "lora" not in k}
              for name, m in [("transformer", student.transformer), ("vae", student.vae),
                              ("text", student.text_encoder), ("teacher", teacher.model)]}
    adapted = {}
    original_sample = student.sample

    def spy_sample(cond, noise, seed):  # the final sample runs with the adapted LoRA
        adapted["lora"] = lora_values(student)
        return original_sample(cond, noise, seed)

    monkeypatch.setattr(student, "sample", spy_sample)
    out = run(VlmTeach(num_steps=2, early_stop=False, **FAST), models, instances[0])
    monkeypatch.undo()

    assert out.steps == 2 and all(step.grad_norm > 0 for step in out.trace.per_step[:2])
    initial = lora_values(student)  # the run resets the LoRA to its initial draw when it ends
    assert len(initial) == len(adapted["lora"]) > 0
    unchanged = [i for i, (a, b) in enumerate(zip(initial, adapted["lora"])) if torch.equal(a, b)]
    assert not unchanged, f"{len(unchanged)} LoRA tensors never moved"
    for name, module in [("transformer", student.transformer), ("vae", student.vae),
                         ("text", student.text_encoder), ("teacher", teacher.model)]:
        after = {k: v for k, v in module.state_dict().items() if "lora" not in k}
        assert after.keys() == frozen[name].keys()
        assert all(torch.equal(after[k], frozen[name][k]) for k in after), f"{name} weights changed"


def test_a_trainable_base_weight_is_refused(models, instances):
    student, _ = models
    weight = student.transformer.patch_embedding.weight
    weight.requires_grad_(True)
    try:
        with pytest.raises(RuntimeError, match="patch_embedding.weight is trainable but is not LoRA"):
            run(VlmTeach(num_steps=1, **FAST), models, instances[0])
    finally:
        weight.requires_grad_(False)


def test_each_instance_starts_from_a_fresh_lora_and_optimiser(models, instances):
    method = VlmTeach(num_steps=2, early_stop=False, **FAST)
    alone = run(method, models, instances[1])
    run(method, models, instances[0])  # moves the LoRA and fills an optimiser's moments
    after_other = run(method, models, instances[1])
    assert numbers(after_other.trace) == numbers(alone.trace)
    assert np.array_equal(after_other.clip, alone.clip)


def test_same_seed_same_trace_and_another_seed_another_noise(models, instances):
    method = VlmTeach(num_steps=1, early_stop=False, **FAST)
    first, again = run(method, models, instances[0]), run(method, models, instances[0])
    assert numbers(first.trace) == numbers(again.trace) and np.array_equal(first.clip, again.clip)
    other = run(method, models, instances[0], seed=SEED + 1)
    assert other.trace.per_step[0].loss != first.trace.per_step[0].loss


def test_early_stop_before_any_update_keeps_the_frozen_student(models, instances):
    student, _ = models
    out = run(VlmTeach(num_steps=3, tau=1e9, **FAST), models, instances[0])
    assert out.steps == 0 and out.trace.stopped_early is True and len(out.trace.per_step) == 1
    assert out.trace.final_loss == out.trace.per_step[0].loss
    assert np.array_equal(out.clip, generate_clip(student, instances[0], SEED))  # same noise, zero LoRA


def test_tau_zero_never_stops_early(models, instances):
    out = run(VlmTeach(num_steps=2, tau=0.0, **FAST), models, instances[0])
    assert out.steps == 2 and out.trace.stopped_early is False
    # two updates, then one evaluation of the kept LoRA: the final loss is the kept LoRA's
    assert len(out.trace.per_step) == 3 and out.trace.per_step[-1].grad_norm is None
    assert out.trace.final_loss == out.trace.per_step[-1].loss
    assert out.trace.per_step[-1].loss != out.trace.per_step[0].loss
    assert set(out.timings) == {"synthesis_s", "encode_s", "optimise_s", "final_eval_s", "final_s"}


def test_fixed_step_count_ignores_the_threshold(models, instances):
    out = run(VlmTeach(num_steps=3, early_stop=False, tau=1e9, **FAST), models, instances[0])
    assert out.steps == 3 and out.trace.steps_used == 3 and out.trace.stopped_early is False
    assert sum(step.grad_norm is not None for step in out.trace.per_step) == 3


def test_observe_sees_each_one_step_prediction_the_teacher_judges(models, instances, monkeypatch):
    student, teacher = models
    method = VlmTeach(num_steps=2, early_stop=False, **FAST)
    cond = student.encode(instances[0])
    noise = student.make_noise(cond, SEED)
    judged, seen = [], []
    original = teacher.yes_nll

    def spy(frames, questions, clock=None):
        judged.append(frames.detach().clone())
        return original(frames, questions, clock)

    monkeypatch.setattr(teacher, "yes_nll", spy)
    weighted = weigh_questions(Queries(**FIXED), 0.5)
    trace = VlmTeachTrace.start(Queries(**FIXED), "fixed", weighted, method.opt_step, 7)
    steps = method.optimise(student, teacher, cond, noise, SEED, 7, weighted, trace,
                            observe=lambda step, frames: seen.append((step, frames.clone())))
    assert steps == 2 and [step for step, _ in seen] == [0, 1, 2]  # after 0, 1 and 2 updates
    for (_, frames), shown in zip(seen, judged, strict=True):
        assert not frames.requires_grad
        torch.testing.assert_close(select_frames(frames, method.num_frames)[0], shown)
    assert not torch.equal(seen[0][1], seen[2][1])  # the updates moved the prediction


def spy_teacher(teacher, monkeypatch):
    calls = []
    original = teacher.yes_nll

    def spy(frames, questions, clock=None):
        calls.append((frames.shape[0], list(questions), clock))
        return original(frames, questions, clock)

    monkeypatch.setattr(teacher, "yes_nll", spy)
    return calls


@pytest.mark.parametrize(
    "goal_weight, expected",
    [(1.0, [FIXED["goal"]]), (0.0, FIXED["process"]), (0.5, [FIXED["goal"], *FIXED["process"]])],
)
def test_lambda_decides_which_questions_the_teacher_answers(models, instances, monkeypatch, goal_weight, expected):
    calls = spy_teacher(models[1], monkeypatch)
    out = run(VlmTeach(num_steps=1, early_stop=False, goal_weight=goal_weight, **FAST), models, instances[0])
    assert [questions for _, questions, _ in calls] == [expected, expected]
    assert out.trace.loss_questions == expected and len(out.trace.final_p_yes) == len(expected)


@pytest.mark.parametrize("k, shown", [(5, 5), (12, 12), (24, 17)])
def test_k_sets_how_many_frames_the_teacher_sees(models, instances, monkeypatch, k, shown):
    calls = spy_teacher(models[1], monkeypatch)
    out = run(VlmTeach(num_steps=0, num_frames=k, **FAST), models, instances[0])
    assert [n for n, _, _ in calls] == [shown]
    assert out.trace.frames_decoded == 17 and len(out.trace.frame_indices) == shown


def test_the_teacher_is_told_the_true_clock_of_the_frames_it_sees(models, instances, monkeypatch):
    """The instance's fps and the shown frames' indices in the decoded clip, as transformers' VideoMetadata
    (what the official processors read): 12 of 17 frames at 8 fps."""
    calls = spy_teacher(models[1], monkeypatch)
    out = run(VlmTeach(num_steps=0, num_frames=12, **FAST), models, instances[0])
    (_, _, clock), = calls
    assert clock.fps == instances[0].fps == 8 and clock.total_num_frames == 17
    assert list(clock.frames_indices) == out.trace.frame_indices and out.trace.frames_fps == 8


def test_the_evaluation_after_the_last_update_is_its_own_cost(models, instances, monkeypatch):
    calls = spy_teacher(models[1], monkeypatch)
    out = run(VlmTeach(num_steps=2, early_stop=False, **FAST), models, instances[0])
    assert len(calls) == 3 and out.steps == 2  # two updates, then the kept LoRA is evaluated once more
    assert out.timings["final_eval_s"] == out.trace.final_eval_s > 0
    assert out.trace.per_step[-1].seconds is None  # the extra evaluation is not an update
    stopped = run(VlmTeach(num_steps=2, tau=10.0, **FAST), models, instances[0])  # stops before any update
    assert stopped.steps == 0 and stopped.timings["final_eval_s"] == 0.0


def test_last_and_all_steps_judge_the_full_sample_and_differ_in_gradient(models, instances, monkeypatch):
    student, _ = models
    judged = []
    original_decode = student.decode

    def spy_decode(latents, light=False):
        if light:
            judged.append(latents.detach().clone())
        return original_decode(latents, light=light)

    monkeypatch.setattr(student, "decode", spy_decode)
    outs = {mode: run(VlmTeach(opt_step=mode, num_steps=1, early_stop=False, **FAST), models, instances[0])
            for mode in ("first", "last", "all")}
    first_x0, last_x0, all_x0 = judged[0], judged[2], judged[4]  # step 0 of each run

    cond = student.encode(instances[0])
    student.reset_lora(0)
    with torch.no_grad():
        full = student.sample(cond, student.make_noise(cond, SEED), seed=SEED)
        one_step = student.predict_x0(cond, student.make_noise(cond, SEED), student.sigmas[0])
    assert torch.allclose(last_x0, full, atol=1e-5) and torch.allclose(all_x0, full, atol=1e-5)
    assert torch.allclose(first_x0, one_step, atol=1e-5) and not torch.allclose(first_x0, full, atol=1e-3)
    step0 = {mode: out.trace.per_step[0] for mode, out in outs.items()}
    assert step0["last"].loss == pytest.approx(step0["all"].loss, abs=1e-5)
    assert step0["last"].grad_norm != pytest.approx(step0["all"].grad_norm, rel=1e-3)


def test_nan_loss_raises_with_the_step_and_the_trace(models, instances, monkeypatch):
    student, teacher = models
    original = teacher.yes_nll
    calls = []

    def nan_on_second_call(frames, questions, clock=None):
        calls.append(1)
        nll = original(frames, questions, clock)
        return nll * float("nan") if len(calls) == 2 else nll

    monkeypatch.setattr(teacher, "yes_nll", nan_on_second_call)
    with pytest.raises(MethodFailed, match="loss is nan at step 1") as info:
        run(VlmTeach(num_steps=3, early_stop=False, **FAST), models, instances[0])
    assert isinstance(info.value.cause, OptimisationDiverged)
    assert len(info.value.trace.per_step) == 2 and info.value.trace.queries.goal == FIXED["goal"]
    # the student is left at its initial LoRA even after the failure
    after = lora_values(student)
    student.reset_lora(derive_seed(SEED, "lora"))
    assert all(torch.equal(a, b) for a, b in zip(after, lora_values(student)))


class NanGradient(torch.autograd.Function):
    """Identity forward, NaN gradient: an instance whose backward diverges."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


def test_nan_gradient_raises_before_the_update(models, instances, monkeypatch):
    teacher = models[1]
    original = teacher.yes_nll
    monkeypatch.setattr(teacher, "yes_nll", lambda frames, questions, clock=None: NanGradient.apply(original(frames, questions, clock)))
    with pytest.raises(MethodFailed, match="gradient norm is nan at step 0") as info:
        run(VlmTeach(num_steps=2, early_stop=False, **FAST), models, instances[0])
    assert isinstance(info.value.cause, OptimisationDiverged) and len(info.value.trace.per_step) == 1


def test_unparseable_teacher_questions_are_marked_as_fallback(models, instances, monkeypatch):
    teacher = models[1]
    # Every reply of the teacher is malformed (no JSON, no question marks).
    monkeypatch.setattr(teacher, "_generate", lambda *args, **kwargs: '{"goal": "the square moves" , process')
    out = run(VlmTeach(num_steps=0, lr=1e-2), models, instances[0])
    queries = out.trace.queries
    assert out.trace.query_source == "teacher" and queries.fallback is True
    assert "the square moves" in queries.raw
    assert out.trace.loss_questions == [queries.goal, *queries.process]
