"""Sample-and-select baselines: Pass@k (oracle: the benchmark's scorer picks) and best-of-n
(the teacher picks by its mean P(Yes) over its own synthesized questions).

Sample 0 uses the instance seed itself, so candidate 0 is exactly the frozen student's video.
"""

from __future__ import annotations

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from baselines.traces import ScorerSelection, TeacherSelection
from harness.frames import clip_to_frames, uniform_frame_indices
from harness.method import Method, MethodContext, generate_clip
from harness.seeding import derive_seed
from harness.teachers.clock import frame_clock
from harness.types import Instance, MethodOutput, ScoringError
from harness.video import write_mp4


def candidate_seeds(seed: int, count: int) -> list[int]:
    return [seed] + [derive_seed(seed, "sample", j) for j in range(1, count)]


def _generate_candidates(ctx: MethodContext, instance: Instance, count: int) -> tuple[list[np.ndarray], list[int]]:
    seeds = candidate_seeds(ctx.seed, count)
    return [generate_clip(ctx.student, instance, s) for s in seeds], seeds


class PassAtK(Method):
    """Oracle selection (the paper's Pass@N): an upper bound, since it reads the answer key."""

    is_oracle = True
    trace_type = ScorerSelection

    def __init__(self, *, k: int = 5):
        if k < 1:
            raise ValueError(f"pass_at_k needs k >= 1, got {k}")
        self.k = k

    def run(self, instance: Instance, ctx: MethodContext) -> MethodOutput:
        start = time.perf_counter()
        seeds = candidate_seeds(ctx.seed, self.k)
        # Where the benchmark scores several videos at once (the judge's requests in flight, VBVR's scoring
        # processes), each candidate is scored while the next is generated: the official scorers take longer than
        # a sample. Otherwise scoring waits for all candidates, on this thread, as a benchmark that is not
        # thread-safe needs.
        workers = int(getattr(ctx.bench, "score_concurrency", 1))
        with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(max(1, workers)) as pool:
            clips, paths, pending = [], [], []
            for j, seed in enumerate(seeds):
                clips.append(generate_clip(ctx.student, instance, seed))
                paths.append(Path(tmp) / f"candidate{j}.mp4")
                write_mp4(paths[-1], clips[-1], fps=instance.fps)  # score the file exactly as it would be saved
                if workers > 1:
                    pending.append(pool.submit(_candidate_score, ctx.bench, instance, paths[-1]))
            generated = time.perf_counter()
            outcomes = [f.result() for f in pending] if workers > 1 else [_candidate_score(ctx.bench, instance, p) for p in paths]
        scores = [score for score, _ in outcomes]
        errors = [error for _, error in outcomes]
        valid = [j for j, s in enumerate(scores) if s is not None]
        if not valid:
            raise ScoringError(f"pass_at_k: no candidate could be scored: {errors}")
        best = max(valid, key=lambda j: scores[j])
        trace = ScorerSelection(seeds=seeds, chosen=best, candidate_scores=scores, candidate_errors=errors)
        timings = {"sampling_s": generated - start, "selection_s": time.perf_counter() - generated}
        return MethodOutput(clip=clips[best], trace=trace, timings=timings, steps=self.k)


def _candidate_score(bench, instance: Instance, path: Path) -> tuple[float | None, str | None]:
    """A candidate's score, or None with the reason where the benchmark could not score it."""
    try:
        return float(bench.score(instance, path).score), None
    except ScoringError as exc:
        return None, str(exc)


class BestOfN(Method):
    """Practical selection: the teacher's mean P(Yes) over its synthesized questions."""

    needs_teacher = True
    trace_type = TeacherSelection

    def __init__(self, *, n: int = 5, max_process: int = 3, num_frames: int = 8):
        if n < 1:
            raise ValueError(f"best_of_n needs n >= 1, got {n}")
        self.n, self.max_process, self.num_frames = n, max_process, num_frames

    def run(self, instance: Instance, ctx: MethodContext) -> MethodOutput:
        start = time.perf_counter()
        queries = ctx.teacher.synthesize_queries(instance, max_process=self.max_process)
        synthesized = time.perf_counter()
        clips, seeds = _generate_candidates(ctx, instance, self.n)
        generated = time.perf_counter()
        p_yes: list[list[float]] = []
        with torch.no_grad():
            for clip in clips:
                frames = clip_to_frames(clip)
                indices = uniform_frame_indices(len(frames), self.num_frames)
                clock = frame_clock(instance.fps, indices, len(frames))
                p_yes.append([float(p) for p in ctx.teacher.p_yes(frames[indices], queries.all, clock)])
        means = [float(np.mean(p)) for p in p_yes]
        best = int(np.argmax(means))
        trace = TeacherSelection(seeds=seeds, chosen=best, queries=queries, p_yes=p_yes, mean_p_yes=means)
        timings = {"synthesis_s": synthesized - start, "sampling_s": generated - synthesized,
                   "selection_s": time.perf_counter() - generated}
        return MethodOutput(clip=clips[best], trace=trace, timings=timings, steps=self.n)
