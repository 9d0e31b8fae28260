"""vlmteach's trace: what it asked, what entered the loss, and one entry per evaluation of the loop."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.types import Queries, Trace

if TYPE_CHECKING:  # its module imports torch; tables read this trace without it
    from harness.vlmteach.loss import WeightedQuestions


@dataclass
class StepLog:
    """One evaluation: the loss and P(Yes) per loss question; for an update also the gradient norm (before
    clipping) and its seconds (forward, backward and update)."""

    loss: float
    p_yes: list[float]
    grad_norm: float | None = None
    seconds: float | None = None


@dataclass
class VlmTeachTrace(Trace):
    """``queries`` (from the teacher or ``fixed`` in the config: ``query_source``); ``loss_questions`` /
    ``loss_roles`` / ``loss_weights`` (what enters the loss); ``frames_decoded`` and ``frame_indices`` (what the
    teacher sees) at ``frames_fps``; ``per_step`` (the last entry evaluates the LoRA that is kept); ``steps_used``,
    ``stopped_early``, ``final_loss``, ``final_p_yes``, ``final_eval_s`` (the evaluation after the last update,
    its own cost; 0 when the loop stopped early)."""

    queries: Queries
    query_source: str  # "teacher" or "fixed"
    loss_questions: list[str]
    loss_roles: list[str]
    loss_weights: list[float]
    opt_step: str
    lora_seed: int
    frames_fps: float | None = None
    frames_decoded: int | None = None
    frame_indices: list[int] | None = None
    per_step: list[StepLog] = field(default_factory=list)
    steps_used: int = 0
    stopped_early: bool = False
    final_loss: float = math.nan
    final_p_yes: list[float] = field(default_factory=list)
    final_eval_s: float = 0.0

    audit = "harness.vlmteach.teacher_audit"  # how far its teacher can be trusted, from these traces

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VlmTeachTrace:
        """Traces written before this dataclass existed kept the query source inside ``queries``."""
        queries = data.get("queries")
        if isinstance(queries, dict) and "source" in queries and "query_source" not in data:
            kept = {key: value for key, value in queries.items() if key != "source"}
            data = {**data, "queries": kept, "query_source": queries["source"]}
        return super().from_dict(data)

    @classmethod
    def start(cls, queries: Queries, query_source: str, weighted: WeightedQuestions, opt_step: str, lora_seed: int,
              frames_fps: float | None = None) -> VlmTeachTrace:
        return cls(queries=queries, query_source=query_source, loss_questions=weighted.questions,
                   loss_roles=weighted.roles, loss_weights=weighted.weights, opt_step=opt_step, lora_seed=lora_seed,
                   frames_fps=frames_fps)

    def log(self, loss: float, p_yes: list[float], frames_decoded: int, frame_indices: list[int]) -> StepLog:
        """Log one evaluation; the frames shown are the same at every step and recorded once."""
        if not self.per_step:
            self.frames_decoded, self.frame_indices = frames_decoded, frame_indices
        self.per_step.append(StepLog(loss=loss, p_yes=p_yes))
        return self.per_step[-1]

    def finish(self, stopped_early: bool, last_eval_s: float) -> None:
        """Close the loop's log: its last entry is the LoRA that is kept."""
        self.steps_used = sum(step.grad_norm is not None for step in self.per_step)
        self.stopped_early = stopped_early
        self.final_loss, self.final_p_yes = self.per_step[-1].loss, self.per_step[-1].p_yes
        self.final_eval_s = 0.0 if stopped_early else last_eval_s
