"""VBVR-Bench's official aggregation (``run_evaluation.py``), made honest about missing samples.

As upstream: per task, per category, In_Domain, Out_of_Domain and overall are means over samples
(overall is not (ID + OOD) / 2 unless both splits are complete), and a video the official scorer
fails on (``ScorerFailure``: a scorer exception, an empty or undecodable video) counts 0 with its
sample in n, as ``run_evaluation.py`` scores it; the record stays an error with the scorer's message
and the count is shown (``n_scorer_failures``). Unlike upstream, missing videos and other errors
(missing ground truth, no scorer for the task, generation failures) are not silently dropped: they
are excluded, counted, and the result is flagged incomplete against the expected instance set.
"""

from __future__ import annotations

from collections import defaultdict
from statistics import fmean
from typing import Any, Iterable, Mapping

from benchmarks.vbvr import tasks as task_table
from benchmarks.vbvr.official import PINNED_COMMIT, ScorerFailure
from harness import records as rec

_SHORT = {"Abstraction": "Abst", "Knowledge": "Know", "Perception": "Perc", "Spatiality": "Spat",
          "Transformation": "Trans"}
_SPLIT_PREFIX = {"id": "ID", "ood": "OOD"}
# The paper's Table I columns (results/reference/vbvr_table1.csv), in order.
# How the runner writes an exception into a record's error: its class name first.
_SCORER_FAILURE_PREFIX = f"{ScorerFailure.__name__}:"
TABLE_COLUMNS: tuple[str, ...] = ("Overall",) + tuple(
    col
    for split in task_table.SPLITS
    for col in (f"{_SPLIT_PREFIX[split]} Avg", *(f"{_SPLIT_PREFIX[split]} {_SHORT[c]}" for c in task_table.CATEGORIES))
)


def _summary(rows: list[Mapping[str, Any]]) -> dict[str, Any]:
    by_task: dict[str, list[float]] = defaultdict(list)
    by_category: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        by_task[r["task"]].append(float(r["score"]))
        by_category[r["category"]].append(float(r["score"]))
    return {
        "mean_score": fmean(float(r["score"]) for r in rows) if rows else None,
        "num_samples": len(rows),
        "by_task": {t: fmean(v) for t, v in sorted(by_task.items())},
        "by_category": {c: fmean(v) for c, v in sorted(by_category.items())},
    }


def official_aggregate(
    records: Iterable[Mapping[str, Any]], *, expected_ids: Iterable[str] | None = None
) -> dict[str, Any]:
    """Records (dicts, last one per instance wins) -> the official summary plus completeness.

    ``expected_ids`` defaults to the full benchmark (100 tasks x 5 samples); pass a run's planned ids
    to judge completeness against a subset. Keys: ``In_Domain`` / ``Out_of_Domain`` / ``overall``
    (as run_evaluation.py: mean_score, num_samples, by_task, by_category), ``table_row`` (Table I
    columns, None where nothing was scored), counts, ``complete``, ``safe_distance_tasks`` and ``notes``.
    """
    latest = rec.latest_by_instance(records)
    expected = set(task_table.expected_ids() if expected_ids is None else expected_ids)
    planned = {i: r for i, r in latest.items() if i in expected}
    failed = {i: r for i, r in planned.items() if is_scorer_failure(r)}
    # The official means: scored samples, plus scorer failures at 0 as upstream.
    ok = [r for r in planned.values() if r["status"] == rec.STATUS_OK] + [{**r, "score": 0.0} for r in failed.values()]
    n_error = sum(r["status"] == rec.STATUS_ERROR for r in planned.values()) - len(failed)
    n_unscored = sum(r["status"] == rec.STATUS_GENERATED for r in planned.values())
    n_missing = len(expected) - len(planned)
    complete = len(ok) == len(expected)

    odd_splits = {r["split"] for r in ok} - set(task_table.SPLITS)
    if odd_splits:
        raise ValueError(f"VBVR records with split {sorted(odd_splits)}; expected one of {task_table.SPLITS}")
    by_split = {s: [r for r in ok if r["split"] == s] for s in task_table.SPLITS}
    result: dict[str, Any] = {task_table.SPLIT_LABELS[s]: _summary(by_split[s]) for s in task_table.SPLITS}
    result["overall"] = _summary(ok)

    row: dict[str, float | None] = {"Overall": result["overall"]["mean_score"]}
    for s in task_table.SPLITS:
        summary = result[task_table.SPLIT_LABELS[s]]
        row[f"{_SPLIT_PREFIX[s]} Avg"] = summary["mean_score"]
        for c in task_table.CATEGORIES:
            row[f"{_SPLIT_PREFIX[s]} {_SHORT[c]}"] = summary["by_category"].get(c)
    result["table_row"] = row
    result["table_columns"] = list(TABLE_COLUMNS)

    result.update(
        n_expected=len(expected),
        n_scored=len(ok) - len(failed),
        n_scorer_failures=len(failed),
        scorer_failures={i: r["error"] for i, r in sorted(failed.items())},
        n_error=n_error,
        n_unscored=n_unscored,
        n_missing=n_missing,
        n_unexpected=len(latest) - len(planned),
        complete=complete,
        safe_distance_tasks={t: result["overall"]["by_task"].get(t) for t in task_table.SAFE_DISTANCE_TASKS},
    )
    result["notes"] = _notes(result, [r for r in ok if r["status"] == rec.STATUS_OK])
    return result


def is_scorer_failure(record: Mapping[str, Any]) -> bool:
    """A score-stage error ``run_evaluation.py`` would have scored 0 (see ``official.ScorerFailure``)."""
    return (record["status"] == rec.STATUS_ERROR and record.get("error_stage") == "score"
            and str(record.get("error") or "").startswith(_SCORER_FAILURE_PREFIX))


def _notes(result: Mapping[str, Any], ok: list[Mapping[str, Any]]) -> list[str]:
    notes = ["VBVR-EvalKit task-specific scores (run_evaluation.py mode); means over samples."]
    counted = result["n_scored"] + result["n_scorer_failures"]
    if not result["complete"]:
        notes.append(
            f"INCOMPLETE: {counted} of {result['n_expected']} expected samples in the means "
            f"({result['n_missing']} missing, {result['n_error']} errors, {result['n_unscored']} not scored yet); "
            "means cover those samples only and are not comparable to the paper's 500-sample numbers."
        )
    notes.append(
        f"{result['n_scorer_failures']} video(s) the official scorer failed on (a scorer exception, an empty or "
        "undecodable video) count 0 in these means with their samples in n, as run_evaluation.py scores them; "
        "their records stay errors with the scorer's message (scorer_failures). Other errors and missing videos "
        "are excluded and counted (upstream drops a missing video silently)."
    )
    details = [r.get("score_details") or {} for r in ok]  # Score.details, as the runner stores it
    patch = sorted({d.get("safe_distance_patch", "unknown") for d in details}) or ["unknown"]
    notes.append(
        "safe_distance import patch for G-24 / G-54: " + ", ".join(patch)
        + " (without it upstream raises NameError there; those two tasks are listed separately)."
    )
    for key, label in (("opencv", "OpenCV"), ("protocol", "generation protocol")):
        values = sorted({str(d[key]) for d in details if key in d})
        notes.append(f"{label}: {', '.join(values) if values else 'not recorded'}")
    commits = {d["vbvr_bench_commit"] for d in details if "vbvr_bench_commit" in d}
    unpinned = sorted(commits - {PINNED_COMMIT})
    if unpinned:
        notes.append(f"VBVR-EvalKit commit(s) {', '.join(unpinned)} differ from the pinned {PINNED_COMMIT[:7]}.")
    return notes
