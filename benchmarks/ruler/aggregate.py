"""RULER-Bench's official aggregation (eval/cal_acc.py), safe on category subsets.

With s_i(m) the instance's mean label value for metric m (0..2; absent = 0, as upstream):
- C(c, m) = mean over the instances of category c of s_i(m), / 2 * 100 ("vision rule" has no IF);
- A(c) = mean over the instances of c of the mean of s_i over c's metrics, / 2 * 100;
- M(m) = unweighted mean of C(c, m) over the categories present (IF: those other than vision rule);
- Overall = mean of the four M(m) (of those defined, when only vision rule is present).
Upstream divides by zero when a category is absent (e.g. without "game"); here only categories
with scored instances enter the means, as OpenCoF's port does. Also returned, because the paper's
46.4 cannot come from the formula above (with 5 categories Overall - mean_c A(c) >= -1.8; its Table IV
has -3.2, ``tests/test_ruler_aggregate.py``): the mean of category averages and the
mean of task scores (task score = mean of its instances' official averages), and the counts that
upstream never reports (expected / scored / error / missing instances). When any verdict was not
given under RULER-Bench's own judge prompt (benchmarks.ruler.system_prompt), ``warnings`` says so:
the harness prints it on every table, summary.json and W&B summary of the run.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from statistics import fmean
from typing import Any, Iterable

from benchmarks.ruler.scoring import official_instance_mean, percent
from benchmarks.ruler.system_prompt import OFFICIAL
from benchmarks.ruler.tasks import (
    CATEGORY_DISPLAY,
    CATEGORY_TASKS,
    METRIC_ORDER,
    TABLE_CATEGORY_ORDER,
    category_metrics,
    task_abbrev,
)
from harness.records import STATUS_ERROR, STATUS_OK, latest_by_instance

NOTES = [
    "overall = RULER-Bench eval/cal_acc.py: mean over IF/VC/VF/RC of (mean over the categories present of "
    "the instance-mean metric score); vision rule has no IF; an absent metric counts 0; categories without "
    "scored instances are left out (upstream crashes on them)",
    "the paper's Table IV Overall (46.4 for Wan2.2-5B-Distilled) cannot come from that formula together with "
    "its category numbers: compare it with overall and with mean_of_category_avgs / mean_of_task_scores",
]


def official_aggregate(records: Iterable[dict[str, Any]], expected_ids: Iterable[str] | None = None) -> dict[str, Any]:
    """Official RULER numbers (0..100) from run records, in the layout of the paper's Tables II/IV.

    ``records`` are results-contract dicts (instance_id, task, category, status, scores); the last
    record per instance wins. ``expected_ids`` (the manifest) counts instances with no record at all;
    without it every record's instance is expected.
    """
    latest = latest_by_instance(records)
    expected = set(expected_ids) if expected_ids is not None else set(latest)
    unexpected = set(latest) - expected  # records outside the manifest are reported, not scored
    latest = {k: r for k, r in latest.items() if k in expected}
    ok = [r for r in latest.values() if r["status"] == STATUS_OK]
    counts = {
        "n_expected": len(expected),
        "n_scored": len(ok),
        "n_error": sum(r["status"] == STATUS_ERROR for r in latest.values()),
        "n_pending": sum(r["status"] not in (STATUS_OK, STATUS_ERROR) for r in latest.values()),
        "n_missing": len(expected - set(latest)),
        "n_unexpected": len(unexpected),
    }
    counts["complete"] = counts["n_scored"] == counts["n_expected"]

    prompts = Counter(_prompt_kind(r) for r in ok)
    by_category: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_task: dict[str, list[float]] = defaultdict(list)
    for r in ok:
        by_category[r["category"]].append(r["scores"])
        by_task[r["task"]].append(official_instance_mean(r["category"], r["scores"]))

    categories: dict[str, dict[str, Any]] = {}
    for cat in _ordered(by_category):
        scores = by_category[cat]
        row = {m: percent(fmean(s.get(m, 0.0) for s in scores)) for m in category_metrics(cat)}
        row["avg"] = percent(fmean(official_instance_mean(cat, s) for s in scores))
        row["n"] = len(scores)
        categories[cat] = row

    metrics = {}
    for m in METRIC_ORDER:
        values = [row[m] for cat, row in categories.items() if m in row]
        metrics[m] = fmean(values) if values else None
    defined = [v for v in metrics.values() if v is not None]
    overall = fmean(defined) if defined else None

    tasks = {t: {"score": percent(fmean(v)), "n": len(v)} for t, v in _ordered_tasks(by_task)}
    category_avgs = [row["avg"] for row in categories.values()]
    task_scores = [row["score"] for row in tasks.values()]
    return {
        "overall": overall,
        "metrics": metrics,
        "categories": categories,
        "tasks": tasks,
        "mean_of_category_avgs": fmean(category_avgs) if category_avgs else None,
        "mean_of_task_scores": fmean(task_scores) if task_scores else None,
        "categories_present": list(categories),
        **counts,
        "table_ii": {"Avg": overall, **{task_abbrev(t): row["score"] for t, row in tasks.items()}},
        "table_iv": {"Overall": overall, **{CATEGORY_DISPLAY.get(c, c): row["avg"] for c, row in categories.items()}},
        "judge_prompts": dict(sorted(prompts.items())),
        "warnings": _prompt_warnings(prompts),
        "notes": list(NOTES),
    }


def _prompt_kind(record: dict[str, Any]) -> str:
    details = record.get("score_details") or {}
    return details.get("system_prompt", "unrecorded")  # records before the choice existed used the paraphrase


def _prompt_warnings(prompts: Counter) -> list[str]:
    other = {kind: n for kind, n in prompts.items() if kind != OFFICIAL}
    if not other:
        return []
    shown = ", ".join(f"{n} {kind}" for kind, n in sorted(other.items()))
    return [f"JUDGE PROMPT NOT OFFICIAL: {shown} of {sum(prompts.values())} verdicts were not given under "
            "RULER-Bench's eval/system_prompt.txt; these numbers are not comparable with the paper's"]


def _ordered(keys: Iterable[str]) -> list[str]:
    """Paper column order; categories unknown to the official list go last, alphabetically."""
    keys = set(keys)
    return [c for c in TABLE_CATEGORY_ORDER if c in keys] + sorted(keys - set(TABLE_CATEGORY_ORDER))


def _ordered_tasks(by_task: dict[str, list[float]]) -> list[tuple[str, list[float]]]:
    order = [t for cat in TABLE_CATEGORY_ORDER for t in CATEGORY_TASKS[cat]]
    known = [t for t in order if t in by_task]
    return [(t, by_task[t]) for t in known + sorted(set(by_task) - set(order))]

