"""VLM-taught test-time optimisation (arXiv 2606.02564, Algorithm 1): a fresh LoRA per instance,
fitted to the teacher's yes/no judgements of the student's own prediction, then one final sample.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from harness.frames import frames_to_clip
from harness.method import Method, MethodContext
from harness.seeding import derive_seed
from harness.teachers.clock import frame_clock
from harness.types import Conditioning, Instance, MethodFailed, MethodOutput, Queries, Student, Teacher
from harness.vlmteach.frames import select_frames
from harness.vlmteach.loss import WeightedQuestions, multi_vqa_loss, weigh_questions
from harness.vlmteach.trace import StepLog, VlmTeachTrace

OptStep = Literal["first", "last", "all"]
OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}


class OptimisationDiverged(RuntimeError):
    """The loss or its gradient is NaN/inf."""


@dataclass
class InstanceStart:
    """What one instance's loop starts from: its loss questions, conditioning, noise, LoRA seed, trace and timings."""

    weighted: WeightedQuestions
    cond: Conditioning
    noise: torch.Tensor
    lora_seed: int
    trace: VlmTeachTrace
    timings: dict[str, float]


class VlmTeach(Method):
    """Per-instance LoRA optimisation of the student under the teacher's multi-question VQA loss.

    Defaults are the paper's (lambda 0.5, K 24, first-step prediction, tau 0.22, N 40, lr 5e-5).
    Choices the paper leaves open are keys here (optimiser, betas, eps, weight decay, clipping) or
    in the student's ``lora`` config (rank, effective scale, targets, init). ``batch_instances`` > 1 runs
    that many instances' loops as one batch, each with its own LoRA (``run_many``, ``harness.vlmteach.batched``).

    Trace: ``VlmTeachTrace``. A failure raises ``MethodFailed`` with the trace so far.
    The teacher is told the frames' true time: the instance's fps and the shown frames' indices.
    Timings: synthesis_s, encode_s, optimise_s (the updates), final_eval_s, final_s.
    """

    needs_teacher = True
    trace_type = VlmTeachTrace
    # One instance at a time is the loop as it always ran. A batch computes the same up to float rounding (another
    # summation order), not bit for bit, so batch_instances > 1 is a config of its own.
    unhashed_defaults = {"batch_instances": 1}

    def __init__(
        self,
        *,
        goal_weight: float = 0.5,
        num_frames: int = 24,
        opt_step: OptStep = "first",
        num_steps: int = 40,
        early_stop: bool = True,
        tau: float = 0.22,
        max_process: int = 3,
        fixed_queries: dict[str, Any] | None = None,
        optimizer: str = "adamw",
        lr: float = 5e-5,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        grad_clip: float | None = 1.0,
        batch_instances: int = 1,
    ):
        if opt_step not in ("first", "last", "all"):
            raise ValueError(f"opt_step must be 'first', 'last' or 'all', got {opt_step!r}")
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {optimizer!r}")
        if num_steps < 0 or num_frames < 1 or max_process < 1:
            raise ValueError(f"need num_steps >= 0, num_frames >= 1, max_process >= 1; got {num_steps}, {num_frames}, {max_process}")
        if grad_clip is not None and grad_clip <= 0:
            raise ValueError(f"grad_clip must be positive or null (off), got {grad_clip}")
        if tau < 0:
            raise ValueError(f"tau (the early-stop loss threshold) must be >= 0, got {tau}")
        if lr <= 0 or eps <= 0 or weight_decay < 0:
            raise ValueError(f"need lr > 0, eps > 0, weight_decay >= 0; got {lr}, {eps}, {weight_decay}")
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas must lie in [0, 1), got {list(betas)}")
        if batch_instances < 1:
            raise ValueError(f"batch_instances must be >= 1, got {batch_instances}")
        if batch_instances > 1 and opt_step != "first":  # a batched DMD step would re-noise every instance alike
            raise ValueError(f"batch_instances > 1 needs opt_step=first (got {opt_step!r}); run it with batch_instances=1")
        self.fixed_queries = _fixed_queries(fixed_queries) if fixed_queries is not None else None
        # Validates lambda (and the process questions of fixed queries) before any instance runs.
        if self.fixed_queries is not None:
            weigh_questions(self.fixed_queries, goal_weight)
        elif not 0.0 <= goal_weight <= 1.0:
            raise ValueError(f"goal_weight (lambda) must lie in [0, 1], got {goal_weight}")
        self.goal_weight = goal_weight
        self.num_frames = num_frames
        self.opt_step = opt_step
        self.num_steps = num_steps
        self.early_stop = early_stop
        self.tau = tau
        self.max_process = max_process
        self.optimizer = optimizer
        self.optimizer_kwargs: dict[str, Any] = {"lr": lr, "weight_decay": weight_decay}
        if optimizer != "sgd":
            self.optimizer_kwargs |= {"betas": tuple(betas), "eps": eps}
        self.grad_clip = grad_clip
        self.batch_instances = batch_instances

    def run(self, instance: Instance, ctx: MethodContext) -> MethodOutput:
        start = self.begin(instance, ctx)
        student, trace, timings = ctx.student, start.trace, start.timings
        try:
            t0 = time.perf_counter()
            steps = self.optimise(student, ctx.teacher, start.cond, start.noise, ctx.seed, start.lora_seed,
                                  start.weighted, trace, fps=instance.fps)
            timings["final_eval_s"] = trace.final_eval_s
            timings["optimise_s"] = time.perf_counter() - t0 - trace.final_eval_s

            t0 = time.perf_counter()
            clip = final_clip(student, start.cond, start.noise, ctx.seed)
            timings["final_s"] = time.perf_counter() - t0
        except Exception as exc:
            raise MethodFailed(exc, trace) from exc
        finally:
            # Leave the student equal to its base model (LoRA B = 0) for whatever runs next.
            student.reset_lora(start.lora_seed)
        return MethodOutput(clip=clip, trace=trace, timings=timings, steps=steps)

    def run_many(self, instances: list[Instance], ctxs: list[MethodContext]) -> list[MethodOutput | Exception]:
        """Up to ``batch_instances`` instances of one shape as one batch (``harness.vlmteach.batched``)."""
        if len(instances) == 1:
            return super().run_many(instances, ctxs)
        from harness.vlmteach.batched import run_batched  # it builds on this module

        return run_batched(self, instances, ctxs)

    def begin(self, instance: Instance, ctx: MethodContext) -> InstanceStart:
        """Questions (synthesised or fixed), conditioning, the instance's noise and LoRA seed, and a fresh trace."""
        if ctx.teacher is None:
            raise ValueError("vlmteach needs a teacher (its yes/no answers are the loss); configure teacher=...")
        student, teacher = ctx.student, ctx.teacher
        timings: dict[str, float] = {}

        t0 = time.perf_counter()
        if self.fixed_queries is not None:
            queries = self.fixed_queries
        else:
            queries = teacher.synthesize_queries(instance, max_process=self.max_process)
        weighted = weigh_questions(queries, self.goal_weight)
        timings["synthesis_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        cond = student.encode(instance)
        noise = student.make_noise(cond, ctx.seed)  # the same draw as `frozen` and for every step
        timings["encode_s"] = time.perf_counter() - t0

        lora_seed = derive_seed(ctx.seed, "lora")
        source = "teacher" if self.fixed_queries is None else "fixed"
        trace = VlmTeachTrace.start(queries, source, weighted, self.opt_step, lora_seed, frames_fps=instance.fps)
        return InstanceStart(weighted=weighted, cond=cond, noise=noise, lora_seed=lora_seed, trace=trace, timings=timings)

    def optimise(
        self,
        student: Student,
        teacher: Teacher,
        cond: Conditioning,
        noise: torch.Tensor,
        seed: int,
        lora_seed: int,
        weighted: WeightedQuestions,
        trace: VlmTeachTrace,
        observe: Callable[[int, torch.Tensor], None] | None = None,
        fps: float | None = None,
    ) -> int:
        """The loop of Algorithm 1 from a fresh LoRA; returns the number of updates and logs each evaluation in
        ``trace`` as it goes. ``observe(step, frames)``, if given, sees the light-decoded one-step prediction
        [T, 3, H, W] (detached) after ``step`` updates, before the teacher does. ``fps``: the clip's frame rate,
        told to the teacher with the shown frames' indices (a teacher with a fixed presentation rate, such as
        the micro one, needs none)."""
        student.reset_lora(lora_seed)  # in place: same modules, fresh weights
        params = student.lora_parameters()
        check_trainable(student, teacher, params)
        optimizer = OPTIMIZERS[self.optimizer](params, **self.optimizer_kwargs)  # fresh moments per instance

        # Iteration num_steps only evaluates: the trace then holds the loss of the LoRA that is kept.
        for step in range(self.num_steps + 1):
            started = time.perf_counter()
            with torch.set_grad_enabled(step < self.num_steps):
                decoded = student.decode(self._predict_x0(student, cond, noise, seed), light=True)
                if observe is not None:
                    observe(step, decoded.detach())
                loss, logged = self.judge(teacher, decoded, weighted, trace, fps)
            if not math.isfinite(logged.loss):
                raise OptimisationDiverged(f"vlmteach: loss is {logged.loss} at step {step}")
            if self.stops(step, logged.loss):
                break  # checked before the update: the current LoRA is kept
            logged.grad_norm = self._update(optimizer, params, loss, step)
            logged.seconds = time.perf_counter() - started  # forward + backward + update
        trace.finish(stopped_early=step < self.num_steps, last_eval_s=time.perf_counter() - started)
        return step  # one update per evaluation before the last

    def judge(self, teacher: Teacher, decoded: torch.Tensor, weighted: WeightedQuestions, trace: VlmTeachTrace,
              fps: float | None) -> tuple[torch.Tensor, StepLog]:
        """The teacher's loss on one light-decoded prediction [T, 3, H, W], logged in ``trace``."""
        frames, indices = select_frames(decoded, self.num_frames)
        clock = None if fps is None else frame_clock(fps, indices, decoded.shape[0])
        nll = teacher.yes_nll(frames, weighted.questions, clock)
        loss = multi_vqa_loss(nll, weighted.weights)
        logged = trace.log(float(loss.detach()), torch.exp(-nll.detach().float()).tolist(), decoded.shape[0], indices)
        return loss, logged

    def stops(self, step: int, loss: float) -> bool:
        """Whether the loop ends at this evaluation, keeping the LoRA just evaluated."""
        return step == self.num_steps or (self.early_stop and loss <= self.tau)

    def _predict_x0(self, student: Student, cond: Conditioning, noise: torch.Tensor, seed: int) -> torch.Tensor:
        """The clean-latent estimate the teacher judges, per ``opt_step`` (the paper's Algorithm 1: the first step's, from pure noise; Table III's last / all steps)."""
        if self.opt_step == "first":
            return student.predict_x0(cond, noise, student.sigmas[0])
        last = len(student.sigmas) - 1
        x = noise
        for k in range(last):
            with torch.set_grad_enabled(self.opt_step == "all" and torch.is_grad_enabled()):
                x = student.step(cond, x, k, seed)
        return student.step(cond, x, last, seed)

    def _update(self, optimizer: torch.optim.Optimizer, params: list[torch.nn.Parameter], loss: torch.Tensor,
                step: int) -> float:
        """One optimiser step on the LoRA; returns the gradient norm before clipping."""
        grads = backward(optimizer, params, loss)
        norm = torch.nn.utils.get_total_norm(grads)
        if not torch.isfinite(norm):
            raise OptimisationDiverged(f"vlmteach: gradient norm is {float(norm)} at step {step} (loss {loss.item()})")
        if self.grad_clip is not None:
            torch.nn.utils.clip_grads_with_norm_(params, self.grad_clip, norm)
        optimizer.step()
        return float(norm)


NO_GRAPH = ("vlmteach: the loss does not depend on the LoRA; the student's predict_x0/decode(light=True) "
            "and the teacher's yes_nll must keep the autograd graph")


def backward(optimizer: torch.optim.Optimizer, params: list[torch.nn.Parameter], loss: torch.Tensor) -> list[torch.Tensor]:
    """Fresh gradients of ``loss`` on ``params``; returns those that received one."""
    if not loss.requires_grad:
        raise RuntimeError(NO_GRAPH)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        raise RuntimeError("vlmteach: no LoRA parameter received a gradient; check the student's LoRA targets")
    return grads


def final_clip(student: Student, cond: Conditioning, noise: torch.Tensor, seed: int) -> np.ndarray:
    """The final video: full sampling from the instance's noise with the LoRA as it is, full decode."""
    with torch.no_grad():
        latents = student.sample(cond, noise, seed=seed)
        return frames_to_clip(student.decode(latents, light=False))


def _fixed_queries(spec: dict[str, Any]) -> Queries:
    """Queries given in the config (the generic-questions ablation) instead of synthesised ones."""
    if not isinstance(spec, dict) or not isinstance(spec.get("goal"), str) or not isinstance(spec.get("process"), list):
        raise ValueError(f"fixed_queries needs a 'goal' string and a 'process' list of strings, got {spec!r}")
    return Queries(goal=spec["goal"], process=[str(q) for q in spec["process"]], fallback=False, raw="")


def check_trainable(student: Student, teacher: Teacher, params: list[torch.nn.Parameter]) -> None:
    """Only the LoRA trains, in fp32: any other trainable weight in the student or teacher is a bug."""
    if not params:
        raise RuntimeError("vlmteach: the student has no LoRA parameters; configure student.lora")
    lora_ids = {id(p) for p in params}
    for p in params:
        if p.dtype != torch.float32 or not p.requires_grad:
            raise RuntimeError(f"vlmteach: LoRA parameters must be fp32 and trainable, got {p.dtype}, requires_grad={p.requires_grad}")
    for owner in (student, teacher):
        for name, module in vars(owner).items():
            if not isinstance(module, torch.nn.Module):
                continue
            for pname, p in module.named_parameters():
                if p.requires_grad and id(p) not in lora_ids:
                    raise RuntimeError(f"vlmteach: {type(owner).__name__}.{name}.{pname} is trainable but is not LoRA")
