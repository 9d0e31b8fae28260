"""Scoring beside generation: up to n instances scored at once on threads (a judge's requests in flight), while the
caller's thread goes on generating. Finished records come back to the caller's thread, the run's one writer.

With n = 1 nothing runs on a thread: ``submit`` scores at once and hands the record back, as a plain loop would.
A call that raises (a judge nobody answers for, ``fail_fast``) stops the run where the caller reads it; scores still in
flight then end unwritten (their verdicts are in the judge cache: the re-run that goes on from there asks nothing again).
"""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Callable, Iterator


class ScorePool:
    def __init__(self, max_concurrency: int) -> None:
        self.max_concurrency = max(1, int(max_concurrency))
        self._executor = ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="score") if self.max_concurrency > 1 else None
        self._pending: list[Future] = []

    def submit(self, score: Callable[..., Any], *args: Any) -> list[Any]:
        """Start ``score(*args)``; returns the results finished by now (in the order they were submitted).
        At most ``max_concurrency`` wait or run: a caller that would queue more waits for one to finish first."""
        if self._executor is None:
            return [score(*args)]
        ready = self.finished()
        if len(self._pending) >= self.max_concurrency:
            wait(self._pending, return_when=FIRST_COMPLETED)
            ready += self.finished()
        self._pending.append(self._executor.submit(score, *args))
        return ready

    def finished(self) -> list[Any]:
        """Results of the calls that have ended; a call's exception is raised here, in the caller's thread."""
        done = [f for f in self._pending if f.done()]
        self._pending = [f for f in self._pending if not f.done()]
        return [f.result() for f in done]

    def drain(self) -> Iterator[Any]:
        """Every remaining result, as each call ends."""
        while self._pending:
            wait(self._pending, return_when=FIRST_COMPLETED)
            yield from self.finished()

    def close(self) -> None:
        """Calls not started are dropped; running ones end (a judge request is not cut off), their results unread."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
