"""Per-instance scores from checklist labels, as the official ``cal_score_per_instance`` does.

Sub-scores (``IF``, ``VC``, ``VF``, ``RC``) are the mean label value (Good 2, Medium 1, Poor 0) of
the instance's questions of that metric, on the official 0..2 scale; a metric with no question is
absent. The headline per-instance score is the official per-instance average on 0..100: the mean
over the category's metrics (no IF for "vision rule") with an absent metric counted as 0, as
``cal_acc.py`` does, divided by 2 and times 100. So the mean of instance scores over a category is
exactly the official category average.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from benchmarks.ruler.tasks import LABEL_VALUES, METRICS, category_metrics


def metric_means(metrics: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    """Mean label value per short metric name, for the metrics that have questions."""
    if len(metrics) != len(labels):
        raise ValueError(f"{len(labels)} labels for {len(metrics)} questions")
    values: dict[str, list[int]] = {}
    for metric, label in zip(metrics, labels):
        values.setdefault(METRICS[metric], []).append(LABEL_VALUES[label])
    return {m: sum(v) / len(v) for m, v in values.items()}


def official_instance_mean(category: str, means: Mapping[str, float]) -> float:
    """The official per-instance average on 0..2 (absent metric = 0, vision rule without IF)."""
    metrics = category_metrics(category)
    return sum(means.get(m, 0.0) for m in metrics) / len(metrics)


def percent(value: float) -> float:
    """0..2 label scale -> 0..100."""
    return value / 2.0 * 100.0
