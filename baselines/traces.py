"""The baselines' traces (harness.types.Trace), in a module of their own: tables read them back without torch,
which the methods' modules import.

- pass@k and best-of-n: a selection among candidates (``baselines.sampling``);
- prompt rewriting: one exchange with the VLM (``baselines.prompt_rewrite``);
- VideoTPO: rounds of critique, edit and rewrite (``baselines.videotpo``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.types import Queries, Trace


@dataclass
class SelectionTrace(Trace):
    """The candidates' seeds and which one was returned."""

    seeds: list[int]
    chosen: int


@dataclass
class ScorerSelection(SelectionTrace):
    """Pass@k's: the benchmark's score of each candidate (None where it could not score it, with the error)."""

    candidate_scores: list[float | None]
    candidate_errors: list[str | None]


@dataclass
class TeacherSelection(SelectionTrace):
    """Best-of-n's: the teacher's questions, its P(Yes) per candidate and question, and their means."""

    queries: Queries
    p_yes: list[list[float]]
    mean_p_yes: list[float]


@dataclass
class PromptRewriteTrace(Trace):
    """The VLM asked, the request (text and image names), its reply and the prompt the student generated from:
    the original one where the reply was unusable (``fallback``)."""

    vlm: dict[str, Any]
    original_prompt: str
    request: dict[str, Any]
    reply: str | None = None
    prompt: str | None = None
    fallback: bool | None = None
    vlm_calls: int = 1
    generations: int = 1


@dataclass
class Exchange:
    """One request to the VLM and its reply (None until it answers: a failure leaves the request)."""

    request: str
    reply: str | None = None


@dataclass
class Critique(Exchange):
    images: list[str] = field(default_factory=list)  # names of the images sent
    chosen: int | None = None  # vlm_pick: the candidate it named (0-based)
    choice_fallback: bool | None = None  # vlm_pick: its preference was unparsable, candidate 1 taken


@dataclass
class Rewrite(Exchange):
    prompt: str | None = None  # the next prompt: the current one where the reply was unusable (``fallback``)
    fallback: bool | None = None


@dataclass
class TpoRound:
    round: int
    prompt: str
    seeds: list[int]
    critique: Critique | None = None
    edit: Exchange | None = None
    rewrite: Rewrite | None = None

    def exchanges(self) -> int:
        return sum(x is not None for x in (self.critique, self.edit, self.rewrite))


@dataclass
class VideoTpoTrace(Trace):
    """The VLM asked, its rounds, the final prompt, and the candidate returned (its index and seed)."""

    vlm: dict[str, Any]
    original_prompt: str
    selection: str
    critic_view: str
    rounds: list[TpoRound] = field(default_factory=list)
    final_prompt: str | None = None
    chosen: int | None = None
    seed: int | None = None
    vlm_calls: int = 0
    generations: int = 0
