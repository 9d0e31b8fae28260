"""The frozen student: one sample from the instance's fixed noise, no test-time computation."""

from __future__ import annotations

import time

from harness.method import Method, MethodContext, generate_clip
from harness.types import Instance, MethodOutput


class Frozen(Method):
    def run(self, instance: Instance, ctx: MethodContext) -> MethodOutput:
        start = time.perf_counter()
        clip = generate_clip(ctx.student, instance, ctx.seed)
        return MethodOutput(clip=clip, timings={"final_s": time.perf_counter() - start})
