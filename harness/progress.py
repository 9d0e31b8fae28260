"""A per-run progress bar: done / total, ETA (tqdm) and the running mean score."""

from __future__ import annotations

import sys

from tqdm import tqdm


class Progress:
    def __init__(self, total: int, done: int, scores: list[float], enabled: bool = True, label: str | None = None):
        self.scores = list(scores)
        self.errors = 0
        # label: which run the bar counts, where several runs share a terminal (a multirun's pool)
        self.bar = tqdm(total=total, initial=done, disable=not enabled, file=sys.stderr, unit="inst", dynamic_ncols=True,
                        desc=label)
        self._refresh()

    def update(self, score: float | None, status: str) -> None:
        if score is not None:
            self.scores.append(score)
        elif status == "error":
            self.errors += 1
        self.bar.update(1)
        self._refresh()

    def _refresh(self) -> None:
        mean = sum(self.scores) / len(self.scores) if self.scores else float("nan")
        self.bar.set_postfix(mean_score=f"{mean:.3f}", errors=self.errors, refresh=False)

    def close(self) -> None:
        self.bar.close()
