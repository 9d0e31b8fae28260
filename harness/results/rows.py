"""A run's rows: per level and group, the mean with its 95% CI, counts and cost; with a baseline run, the paired
difference against it (harness.stats)."""

from __future__ import annotations

from typing import Any, Callable

from harness import stats
from harness.judge_usage import mean_judge_tokens
from harness.records import STATUS_ERROR, STATUS_GENERATED, STATUS_OK
from harness.results.runs import RunResults

# level name -> group key of one record
LEVELS: dict[str, Callable[[dict[str, Any]], str]] = {
    "overall": lambda r: "all",
    "split": lambda r: r["split"],
    "split/category": lambda r: f"{r['split']}/{r['category']}",
    "category": lambda r: r["category"],
    "task": lambda r: r["task"],
}
SPLIT_LEVELS = ("split", "split/category")  # shown only when a run has more than one split
MAIN_LEVELS = ("overall", "split", "category")  # columns of the comparison table
DETAIL_LEVELS = ("split/category", "task")  # rows of the detail tables


def levels_of(records: list[dict[str, Any]]) -> list[str]:
    many_splits = len({r["split"] for r in records}) > 1
    return [lvl for lvl in LEVELS if many_splits or lvl not in SPLIT_LEVELS]


def main_levels(run: RunResults) -> dict[str, Callable[[dict[str, Any]], str]]:
    """The run's levels of the comparison table's columns, with their group keys."""
    return {lvl: LEVELS[lvl] for lvl in levels_of(run.records) if lvl in MAIN_LEVELS}


def _units(level: str, rows: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Bootstrap clusters and strata: tasks within categories; instances for a single task's row."""
    if level == "task":
        return [r["instance_id"] for r in rows], ["" for _ in rows]
    return [r["task"] for r in rows], [r["category"] for r in rows]


def _mean_of(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def run_rows(run: RunResults, baseline: RunResults | None = None) -> list[dict[str, Any]]:
    """One row per (level, group) of a run; with a baseline run, paired-difference columns too."""
    base_ok = {r["instance_id"]: r for r in baseline.records if r["status"] == STATUS_OK} if baseline else {}
    planned = run.completeness.planned
    membership_known = all(i in run.membership for i in planned)
    out = []
    for level in levels_of(run.records):
        key_of = LEVELS[level]
        for group in sorted({key_of(r) for r in run.records}):
            in_group = [r for r in run.records if key_of(r) == group]
            ok = [r for r in in_group if r["status"] == STATUS_OK]
            cell = f"{run.bench}|{level}|{group}"
            est = stats.cluster_bootstrap([r["score"] for r in ok], *_units(level, ok), key=cell)
            if level == "overall":
                n_expected: int | None = len(planned) if run.has_manifest else None
            elif run.has_manifest and membership_known:
                n_expected = sum(1 for i in planned if key_of(run.membership[i]) == group)
            else:
                n_expected = None  # a missing instance's group is unknown
            seconds = [r["timings"]["total_s"] for r in ok if "total_s" in r.get("timings", {})]
            row = {
                "level": level, "group": group,
                "category": in_group[0]["category"] if level == "task" else None,
                "mean": est.mean if est else None, "ci_low": est.ci_low if est else None,
                "ci_high": est.ci_high if est else None, "n": len(ok),
                "n_error": sum(r["status"] == STATUS_ERROR for r in in_group),
                "n_unscored": sum(r["status"] == STATUS_GENERATED for r in in_group),
                "n_expected": n_expected,
                "mean_seconds": _mean_of(seconds), "mean_steps": _mean_of([float(r.get("steps", 0)) for r in ok]),
                "judge_tokens": mean_judge_tokens(ok),
            }
            if baseline is not None:
                pairs = [(r, base_ok[r["instance_id"]]) for r in ok if r["instance_id"] in base_ok]
                diff = stats.paired_difference(
                    [a["score"] for a, _ in pairs], [b["score"] for _, b in pairs],
                    *_units(level, [a for a, _ in pairs]), key=cell + "|paired",
                )
                row.update({
                    "diff_mean": diff.mean if diff else None, "diff_ci_low": diff.ci_low if diff else None,
                    "diff_ci_high": diff.ci_high if diff else None, "n_pairs": len(pairs),
                    "p_value": diff.p_value if diff else None,
                })
            out.append(row)
    return out
