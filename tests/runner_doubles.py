"""Doubles for testing the runner's error paths: a method and a scorer that fail for chosen instances
while a marker file exists (so a re-run with the same config can succeed)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from baselines.frozen import Frozen
from benchmarks.micro import MicroBenchmark
from harness.chat_api import EndpointUnreachable
from harness.method import MethodContext
from harness.types import Instance, MethodFailed, MethodOutput, Score, Trace


@dataclass
class Attempt(Trace):
    instance_id: str


class FailWhileMarked(Frozen):
    """Fails as a method does: a ``MethodFailed`` with what it had recorded (its attempt) and the error."""

    def __init__(self, *, fail_ids: list[str], marker: str):
        self.fail_ids, self.marker = set(fail_ids), Path(marker)

    def run(self, instance: Instance, ctx: MethodContext) -> MethodOutput:
        if instance.id in self.fail_ids and self.marker.exists():
            try:
                raise RuntimeError(f"injected failure for {instance.id}")
            except RuntimeError as exc:
                raise MethodFailed(exc, Attempt(instance.id)) from exc
        return super().run(instance, ctx)


class NanWhileMarked(MicroBenchmark):
    """The micro benchmark, except that its scorer returns NaN for chosen instances while a marker file exists."""

    def __init__(self, *, nan_ids: list[str], marker: str, **kwargs):
        super().__init__(**kwargs)
        self.nan_ids, self.marker = set(nan_ids), Path(marker)

    def score(self, instance: Instance, video: Path) -> Score:
        score = super().score(instance, video)
        if instance.id in self.nan_ids and self.marker.exists():
            return Score(score=float("nan"), scores=score.scores)
        return score


class UnreachableJudge(MicroBenchmark):
    """The micro benchmark scored by a judge that nothing answers for."""

    def score(self, instance: Instance, video: Path) -> Score:
        raise EndpointUnreachable("nothing answers at model 'judge' at http://127.0.0.1:9/v1")
