"""The shared vocabulary of the harness: what flows between benchmark, method, student and teacher.

Conventions used everywhere:
- A *clip* is a ``numpy.ndarray`` of dtype uint8 and shape ``[T, H, W, 3]`` (RGB). It is what is
  written to mp4 (``harness.video``); scorers read the mp4 back, as the official scorers do.
- *Frames* are a ``torch.Tensor`` of shape ``[T, 3, H, W]`` with values in [0, 1]; they may carry
  gradients (the differentiable path from the student's decoder into the teacher).
- *Latents* are a ``torch.Tensor`` of shape ``[1, C, F, h, w]`` in the student's normalised space.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from harness.rebuild import rebuild

if TYPE_CHECKING:  # torch is heavy to import; the table CLI needs only the data types
    import torch


@dataclass(frozen=True)
class Instance:
    """One benchmark item. ``reference`` is judge-only: students and teachers never see it."""

    id: str
    bench: str
    task: str
    category: str
    split: str
    prompt: str
    num_frames: int
    height: int
    width: int
    fps: int
    first_frame: np.ndarray | None = None  # uint8 [H, W, 3]; None means text-to-video
    reference: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Score:
    """A benchmark's verdict on one video: the headline number and its sub-scores."""

    score: float
    scores: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Queries:
    """The teacher's yes/no questions for one instance ("Yes" always means satisfied)."""

    goal: str
    process: list[str]
    fallback: bool = False  # True when parsing failed and a deterministic fallback was used
    raw: str = ""  # the teacher's raw text, kept for the trace

    @property
    def all(self) -> list[str]:
        return [self.goal, *self.process]


class Trace:
    """What a method records about one instance (its own dataclass: vlmteach's steps, a selection, the prompt
    exchanges); it is stored as a dict of its fields in the record's ``trace`` and read back by ``from_dict``.

    A method names its trace type (``harness.method.Method.trace_type``) and the runner writes it into the run's
    manifests, so tables read traces back typed: a trace type lives in a module that imports without torch."""

    # A module that audits runs with this trace in the results tables (harness.results.audit); it must import
    # without torch too.
    audit: ClassVar[str | None] = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trace:
        """The trace ``to_dict`` gave (and JSON kept), nested dataclasses rebuilt; raises
        ``harness.rebuild.DoesNotFit`` where ``data`` has another layout."""
        return rebuild(cls, data)

    @classmethod
    def import_path(cls) -> str:
        """What a manifest names it by (harness.runner)."""
        return f"{cls.__module__}.{cls.__qualname__}"


@dataclass
class MethodOutput:
    """What a method returns for one instance: the final clip, its trace and cost counters."""

    clip: np.ndarray
    trace: Trace | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase
    # The method's own unit of work, the tables' work/inst beside seconds: vlmteach its LoRA updates, pass@k and
    # best-of-n the candidates generated, prompt rewriting and VideoTPO the VLM calls plus the generations; 0 for one
    # plain generation (frozen). Units differ between methods: it compares runs of one method.
    steps: int = 0


class ScoringError(RuntimeError):
    """A scorer or judge could not produce a score (bad response, API failure, missing GT)."""


class MethodFailed(RuntimeError):
    """A method failed on one instance. The runner records ``cause`` as the error and keeps ``trace``, what the
    method had recorded up to the failure."""

    def __init__(self, cause: Exception, trace: Trace):
        super().__init__(str(cause))
        self.cause = cause
        self.trace = trace


class UserError(RuntimeError):
    """A problem the user can fix (bad config, missing weights or data). Printed without traceback."""


@runtime_checkable
class Benchmark(Protocol):
    name: str
    # Keys of the bench config that decide scores, not videos (a judge, a scorer patch): they form the score
    # hash, so videos can be generated now and scored later with other settings (harness.config).
    score_settings: tuple[str, ...]
    # The paper table (results/reference/<name>.csv) that comparisons show beside this benchmark's runs, or None.
    reference_table: ClassVar[str | None]

    @staticmethod
    def official_aggregate(records: list[dict[str, Any]], *,
                           expected_ids: list[str] | None = None) -> dict[str, Any] | None:
        """The benchmark's own headline numbers from a run's records (its paper's formula), or None where it has
        none; ``expected_ids`` are the instances the run planned, where known, so missing ones can be counted.
        Asked of the class at table time (harness.results.benchmark): its module must import without torch."""

    def instances(self) -> list[Instance]:
        """All instances selected by the benchmark config, sorted by id."""

    def score(self, instance: Instance, video: Path) -> Score:
        """Score one generated mp4 as saved (official scorers read files); raise ScoringError when
        that is impossible (corrupt video, judge failure, missing ground truth)."""

    def video_relpath(self, instance: Instance) -> str:
        """Where the clip goes inside ``videos/``, in the benchmark's official layout."""

    # Optional, read with getattr by the runner: ``score_concurrency`` (int, default 1), videos it may score at
    # once on threads while generation goes on (``score`` must then be thread-safe); ``close()``, called when a
    # run ends, to stop what scoring started (worker processes). Settings that change only how scoring runs are
    # listed in a ``transport_settings`` class attribute, which keeps them out of both hashes.


@dataclass
class Conditioning:
    """Everything the student needs to generate for one instance, computed once per instance. Batch B is 1,
    except where several instances of one shape run at once (``WanStudent.batched_lora``)."""

    prompt_embeds: torch.Tensor  # [B, L, D] text-encoder output
    first_latent: torch.Tensor | None  # [B, C, 1, h, w] normalised latent of the first frame, or None (T2V)
    latent_shape: tuple[int, ...]  # (B, C, F, h, w)
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Student(Protocol):
    def encode(self, instance: Instance) -> Conditioning: ...

    sigmas: list[float]  # the sampling schedule, sigma_0 = 1.0 is pure noise

    def make_noise(self, cond: Conditioning, seed: int) -> torch.Tensor: ...

    def predict_x0(self, cond: Conditioning, latents: torch.Tensor, sigma: float) -> torch.Tensor:
        """Clean-latent estimate x0 = x_t - sigma * v, differentiable w.r.t. the LoRA."""

    def step(self, cond: Conditioning, x_t: torch.Tensor, k: int, seed: int) -> torch.Tensor:
        """Sampling step ``k`` from ``x_t`` at ``sigmas[k]``; the last step returns clean latents."""

    def sample(self, cond: Conditioning, noise: torch.Tensor, seed: int) -> torch.Tensor:
        """Full sampling from ``noise`` (``seed`` drives any re-noising); returns clean latents."""

    def decode(self, latents: torch.Tensor, light: bool = False) -> torch.Tensor:
        """Latents -> frames [T, 3, H, W] in [0, 1]; ``light`` picks the cheap differentiable decoder."""

    def lora_parameters(self) -> list[torch.nn.Parameter]: ...

    def reset_lora(self, seed: int) -> None:
        """Re-initialise the LoRA weights in place, deterministically from ``seed``."""


@runtime_checkable
class Teacher(Protocol):
    def synthesize_queries(self, instance: Instance, max_process: int = 3) -> Queries: ...

    def yes_nll(self, frames: torch.Tensor, questions: list[str], clock: Any = None) -> torch.Tensor:
        """-log P("Yes") per question, shape [Q], differentiable w.r.t. ``frames``. ``clock`` (a transformers
        ``VideoMetadata``, ``harness.teachers.clock.frame_clock``) says when the frames were taken: the
        source clip's fps and their indices in it."""

    def p_yes(self, frames: torch.Tensor, questions: list[str], clock: Any = None) -> list[float]:
        """P("Yes") per question, exp(-``yes_nll``) without gradients: what a selection by the teacher reads."""

    def generate(self, prompt: str, images: list[np.ndarray] | None = None, max_new_tokens: int = 128) -> str: ...
