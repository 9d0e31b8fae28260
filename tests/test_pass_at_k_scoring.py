"""Pass@k scores its candidates as the benchmark allows: several at once beside generation where the benchmark
declares ``score_concurrency`` > 1, one after another on the caller's thread otherwise; the same selection."""

from __future__ import annotations

import threading

from baselines.sampling import PassAtK
from harness.method import MethodContext
from tests.cli import compose_runner


class ConcurrentBench:
    """The micro benchmark, declaring ``concurrency`` scores at once; ``score`` waits until ``concurrency`` calls are
    in it together (a barrier), so candidates scored one after another would time out."""

    def __init__(self, bench, concurrency: int):
        self.bench, self.score_concurrency = bench, concurrency
        self.barrier = threading.Barrier(concurrency, timeout=20) if concurrency > 1 else None
        self.threads: set[str] = set()

    def score(self, instance, video):
        self.threads.add(threading.current_thread().name)
        if self.barrier is not None:
            self.barrier.wait()
        return self.bench.score(instance, video)


def _pass_at_k(tmp_path, concurrency: int):
    runner = compose_runner(tmp_path, "limit=1", "method=pass_at_k", "method.k=4")
    instance = runner.bench.instances()[0]
    bench = ConcurrentBench(runner.bench, concurrency)
    out = PassAtK(k=4).run(instance, MethodContext(student=runner.student, teacher=None, bench=bench, seed=7))
    return out, bench


def test_candidates_are_scored_together_where_the_benchmark_allows_it_with_the_same_selection(tmp_path):
    alone, sequential = _pass_at_k(tmp_path / "one", 1)
    together, concurrent = _pass_at_k(tmp_path / "two", 2)
    assert sequential.threads == {threading.current_thread().name}  # not thread-safe: scored on the caller's thread
    assert threading.current_thread().name not in concurrent.threads and len(concurrent.threads) == 2
    assert together.trace == alone.trace and (together.clip == alone.clip).all()
    assert len(alone.trace.candidate_scores) == 4 and alone.trace.chosen == max(
        range(4), key=lambda j: alone.trace.candidate_scores[j])
