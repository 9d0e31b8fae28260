"""The multi-question VQA loss (paper Eq. 5): lambda * goal NLL + (1 - lambda) * mean process NLL."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.types import Queries


@dataclass(frozen=True)
class WeightedQuestions:
    """The questions that enter the loss and their weights (summing to 1)."""

    questions: list[str]
    weights: list[float]
    roles: list[str]  # "goal" or "process", aligned with ``questions``


def weigh_questions(queries: Queries, goal_weight: float) -> WeightedQuestions:
    """Questions with a non-zero weight: lambda=1 keeps only the goal, lambda=0 only the process.

    Questions of weight zero are left out, so the teacher never spends a forward pass on them.
    """
    if not 0.0 <= goal_weight <= 1.0:
        raise ValueError(f"goal_weight (lambda) must lie in [0, 1], got {goal_weight}")
    questions: list[str] = []
    weights: list[float] = []
    roles: list[str] = []
    if goal_weight > 0.0:
        questions.append(queries.goal)
        weights.append(goal_weight)
        roles.append("goal")
    if goal_weight < 1.0:
        if not queries.process:
            raise ValueError(
                f"goal_weight={goal_weight} gives the process questions weight {1 - goal_weight}, "
                "but the queries have no process question; set goal_weight=1.0 or supply process questions"
            )
        share = (1.0 - goal_weight) / len(queries.process)
        questions.extend(queries.process)
        weights.extend([share] * len(queries.process))
        roles.extend(["process"] * len(queries.process))
    return WeightedQuestions(questions=questions, weights=weights, roles=roles)


def multi_vqa_loss(nll: torch.Tensor, weights: list[float]) -> torch.Tensor:
    """Weighted sum of per-question NLLs ``nll [Q]`` in float32 (differentiable)."""
    if nll.ndim != 1 or nll.shape[0] != len(weights):
        raise ValueError(f"expected {len(weights)} per-question NLLs, got shape {tuple(nll.shape)}")
    return (nll.float() * torch.tensor(weights, dtype=torch.float32, device=nll.device)).sum()
