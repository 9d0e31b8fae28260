"""A method for testing the runner's error path: the frozen student, except that it fails for
chosen instances while a marker file exists (so a re-run with the same config can succeed)."""

from __future__ import annotations

from pathlib import Path

from baselines.frozen import Frozen
from harness.method import MethodContext
from harness.types import Instance, MethodOutput


class FailWhileMarked(Frozen):
    def __init__(self, *, fail_ids: list[str], marker: str):
        self.fail_ids, self.marker = set(fail_ids), Path(marker)

    def run(self, instance: Instance, ctx: MethodContext) -> MethodOutput:
        if instance.id in self.fail_ids and self.marker.exists():
            raise RuntimeError(f"injected failure for {instance.id}")
        return super().run(instance, ctx)
