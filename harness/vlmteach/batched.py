"""vlmteach on several instances at once (``method.batch_instances``): one DiT batch, one LoRA per instance.

Each instance keeps what its own run (``VlmTeach.run``) has: its questions, noise and LoRA seed, its optimiser
moments (AdamW is element-wise, so one optimiser over the stacks of ``WanStudent.batched_lora`` is one per
adapter), gradient clipping by its own norm, its early stop and its failure. The light decoder and the teacher
judge each instance's prediction on its own; each loss's gradient reaches its own row of the batch's prediction
and, through the DiT, its own adapter. The final video samples each instance alone with the adapter it kept, as
peft's adapter. Traces and videos equal the instances' own runs up to float rounding: the batch computes the same
products in another order. Timings are an instance's own but for its loop (``optimise_s``, the steps'
``seconds``): the batch's, while it was in it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from harness.method import MethodContext
from harness.students.lora import BatchedAdapters
from harness.types import Instance, MethodFailed, MethodOutput, Student, Teacher, UserError
from harness.vlmteach.method import (NO_GRAPH, OPTIMIZERS, InstanceStart, OptimisationDiverged, VlmTeach,
                                     check_trainable, final_clip)
from harness.vlmteach.trace import VlmTeachTrace


@dataclass
class _Member:
    """One instance of the batch: what its own run holds, and how it left the loop."""

    row: int  # its adapter in the stacks
    ctx: MethodContext
    fps: float | None
    start: InstanceStart
    kept: list[torch.Tensor] | None = None  # its adapter at the evaluation that ended its loop: what it keeps
    failure: Exception | None = None
    steps: int = 0
    loop_s: float = 0.0  # from the loop's start until it left

    @property
    def trace(self) -> VlmTeachTrace:
        return self.start.trace


def run_batched(method: VlmTeach, instances: list[Instance], ctxs: list[MethodContext]) -> list[MethodOutput | Exception]:
    """``VlmTeach.run`` of each instance, the loop as one batch: per instance its output or its own failure. An
    exception of the batch as a whole (out of memory) is raised: the runner then runs each instance alone."""
    student, teacher = ctxs[0].student, ctxs[0].teacher
    if not hasattr(student, "batched_lora"):
        raise UserError(f"method.batch_instances > 1 needs a student with a batched LoRA (WanStudent.batched_lora); "
                        f"{type(student).__name__} has none: set method.batch_instances=1")
    outcomes: list[MethodOutput | Exception | None] = [None] * len(instances)
    members: dict[int, _Member] = {}
    for i, (instance, ctx) in enumerate(zip(instances, ctxs, strict=True)):
        try:
            members[i] = _Member(row=len(members), ctx=ctx, fps=instance.fps, start=method.begin(instance, ctx))
        except Exception as exc:  # noqa: BLE001 - its own failure, as its own run raises it
            outcomes[i] = exc
    if members:
        _optimise(method, student, teacher, list(members.values()))
        for i, member in members.items():
            outcomes[i] = _final(student, member)
    return outcomes


def _optimise(method: VlmTeach, student: Student, teacher: Teacher, members: list[_Member]) -> None:
    """``VlmTeach.optimise`` for every member at once; each leaves the batch where its own loop ends."""
    check_trainable(student, teacher, student.lora_parameters())  # peft's adapter; the stacks are the loop's own
    with student.batched_lora([m.start.lora_seed for m in members]) as adapters:
        optimizer = OPTIMIZERS[method.optimizer](adapters.params, **method.optimizer_kwargs)
        loop_start = time.perf_counter()
        running = members
        for step in range(method.num_steps + 1):
            started = time.perf_counter()
            adapters.use_rows([m.row for m in running])
            with torch.set_grad_enabled(step < method.num_steps):
                judged = _evaluate(method, student, teacher, running)
            updating = []
            for j, member in enumerate(running):
                logged = member.trace.per_step[-1]
                if not math.isfinite(logged.loss):
                    member.failure = _raised(OptimisationDiverged(f"vlmteach: loss is {logged.loss} at step {step}"))
                elif method.stops(step, logged.loss):
                    # Its adapter as evaluated: later steps still move its rows (AdamW's momentum), unused.
                    member.kept, member.steps = adapters.adapter(member.row), step
                    member.trace.finish(stopped_early=step < method.num_steps, last_eval_s=time.perf_counter() - started)
                    member.loop_s = time.perf_counter() - loop_start
                else:
                    updating.append((j, member))
            # Those that left no longer run: the batch shrinks, and the DiT spends nothing on them.
            running = _update(method, optimizer, adapters, judged, updating, step) if updating else []
            for member in running:
                member.trace.per_step[-1].seconds = time.perf_counter() - started
            if not running:
                break


def _evaluate(method: VlmTeach, student: Student, teacher: Teacher, running: list[_Member]) -> _Judged:
    """One batched one-step prediction, judged per member (logged in its trace). With gradients on, each member's
    loss is backpropagated to its row of the prediction at once, freeing its light decoder's and teacher's graph:
    the batch holds k DiT graphs but one judge's at a time (the DiT's backward, in ``_update``, takes those rows)."""
    cond = student.stack_conditions([m.start.cond for m in running])
    noise = torch.cat([m.start.noise for m in running])
    x0 = student.predict_x0(cond, noise, student.sigmas[0])
    judged = x0.detach().requires_grad_(x0.requires_grad)
    losses = []
    for j, member in enumerate(running):
        decoded = student.decode(judged[j:j + 1], light=True)
        loss, logged = method.judge(teacher, decoded, member.start.weighted, member.trace, member.fps)
        if judged.requires_grad and math.isfinite(logged.loss):
            loss.backward()
        losses.append(loss.detach())
    return _Judged(x0, judged.grad, losses)


@dataclass
class _Judged:
    """A step's prediction [k, ...], the members' loss gradients on it (rows of members not judged: zero), and
    their losses."""

    x0: torch.Tensor
    x0_grad: torch.Tensor | None
    losses: list[torch.Tensor]


def _update(method: VlmTeach, optimizer: torch.optim.Optimizer, adapters: BatchedAdapters, judged: _Judged,
            updating: list[tuple[int, _Member]], step: int) -> list[_Member]:
    """One optimiser step on every updating member's adapter, each clipped by its own gradient norm (as its own
    run clips its LoRA's total norm); a member whose norm is not finite fails instead. ``updating``: (row in the
    step's batch, member). Returns those updated."""
    if judged.x0_grad is None:
        raise RuntimeError(NO_GRAPH)
    # Only the updating members' rows: one that stops here keeps its adapter, so its gradient is not wanted.
    keep = torch.zeros(len(judged.losses), dtype=torch.bool, device=judged.x0.device)
    keep[[j for j, _ in updating]] = True
    optimizer.zero_grad(set_to_none=True)
    judged.x0.backward(judged.x0_grad * keep.view(-1, *[1] * (judged.x0.ndim - 1)))
    norms = adapter_grad_norms(adapters.params)
    updated = []
    for j, member in updating:
        norm = norms[member.row]
        if torch.isfinite(norm):
            member.trace.per_step[-1].grad_norm = float(norm)
            updated.append(member)
        else:  # its rows may turn NaN in the step below; it runs no more, and no other adapter reads them
            member.failure = _raised(OptimisationDiverged(
                f"vlmteach: gradient norm is {float(norm)} at step {step} (loss {judged.losses[j].item()})"))
    if method.grad_clip is not None:
        clip_per_adapter(adapters.params, method.grad_clip, norms)
    optimizer.step()
    return updated


def adapter_grad_norms(stacks: list[torch.Tensor]) -> torch.Tensor:
    """[N]: each adapter's total gradient norm over the stacks (rows without a gradient count zero), as
    ``torch.nn.utils.get_total_norm`` takes it over one adapter's tensors."""
    per_tensor = [p.grad.flatten(1).norm(dim=1) for p in stacks if p.grad is not None]
    return torch.stack(per_tensor).norm(dim=0)


def clip_per_adapter(stacks: list[torch.Tensor], max_norm: float, norms: torch.Tensor) -> None:
    """Scale each adapter's rows of the gradients by ``torch.nn.utils.clip_grads_with_norm_``'s factor for its own
    norm: min(1, max_norm / (norm + 1e-6))."""
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for p in stacks:
        if p.grad is not None:
            p.grad.mul_(coef.view(-1, *[1] * (p.ndim - 1)))


def _final(student: Student, member: _Member) -> MethodOutput | MethodFailed:
    """The member's final video with the adapter it kept, loaded as peft's; or its failure with its trace."""
    trace, timings = member.trace, member.start.timings
    if member.failure is not None:
        return MethodFailed(member.failure, trace)
    timings["final_eval_s"] = trace.final_eval_s
    timings["optimise_s"] = member.loop_s - trace.final_eval_s
    t0 = time.perf_counter()
    try:
        student.load_lora(member.kept)
        clip = final_clip(student, member.start.cond, member.start.noise, member.ctx.seed)
    except Exception as exc:  # noqa: BLE001 - its own failure, as in its own run
        return MethodFailed(exc, trace)
    finally:
        student.reset_lora(member.start.lora_seed)  # the base model again, as after its own run
    timings["final_s"] = time.perf_counter() - t0
    return MethodOutput(clip=clip, trace=trace, timings=timings, steps=member.steps)


def _raised(exc: Exception) -> Exception:
    """``exc`` with a traceback (the runner's error message names where it was raised)."""
    try:
        raise exc
    except Exception as raised:  # noqa: BLE001
        return raised
