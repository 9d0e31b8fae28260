"""The official RULER aggregation against the README's Wan2.2-A14B numbers (RULER-Bench's eval/cal_acc.py)."""

from statistics import fmean

import pytest

from benchmarks.ruler import official_aggregate
from benchmarks.ruler.tasks import CATEGORY_TASKS

# README per-category table for Wan2.2 A14B: C(c, m) on 0..100, and the category Avg column.
README = {
    "science": {"IF": 37.15, "VC": 68.52, "VF": 80.37, "RC": 17.16, "avg": 50.80},
    "game": {"IF": 16.29, "VC": 64.56, "VF": 80.13, "RC": 14.12, "avg": 43.77},
    "semantic": {"IF": 48.77, "VC": 82.35, "VF": 82.70, "RC": 37.73, "avg": 62.89},
    "hypothetical": {"IF": 61.11, "VC": 64.74, "VF": 77.03, "RC": 12.93, "avg": 53.95},
    "humanity": {"IF": 49.76, "VC": 72.34, "VF": 83.15, "RC": 30.21, "avg": 58.86},
    "vision rule": {"VC": 59.03, "VF": 65.55, "RC": 29.34, "avg": 51.31},
}


def readme_records(categories=README):
    """Two instances per category (two tasks) whose per-metric means are the README's C(c, m).

    The vision-rule instances carry an IF sub-score that the official formula must ignore.
    """
    records = []
    for cat in categories:
        target = {m: v / 50 for m, v in README[cat].items() if m != "avg"}  # 0..100 -> 0..2
        for k, sign in enumerate((+1, -1)):
            scores = {m: v + sign * 0.1 for m, v in target.items()}
            if cat == "vision rule":
                scores["IF"] = 2.0 if k == 0 else 0.0
            task = CATEGORY_TASKS[cat][k]
            records.append({"instance_id": f"ruler/{task}/0", "task": task, "category": cat, "status": "ok", "scores": scores})
    return records


def test_readme_overall_53_24_on_all_six_categories():
    out = official_aggregate(readme_records())
    assert out["overall"] == pytest.approx(53.24, abs=0.01)
    assert out["metrics"] == pytest.approx({"IF": 42.62, "VC": 68.59, "VF": 78.15, "RC": 23.58}, abs=0.01)
    for cat, row in README.items():
        assert out["categories"][cat]["avg"] == pytest.approx(row["avg"], abs=0.01)
        assert out["categories"][cat]["n"] == 2
    assert "IF" not in out["categories"]["vision rule"]
    assert (out["n_expected"], out["n_scored"], out["n_error"], out["complete"]) == (12, 12, 0, True)


def test_identity_between_overall_and_category_mean():
    """Overall - mean_c A(c) = (M(IF) - A(vision rule)) / (4 n), for n categories."""
    for cats in (list(README), [c for c in README if c != "game"]):
        out = official_aggregate(readme_records(cats))
        gap = out["overall"] - out["mean_of_category_avgs"]
        expected = (out["metrics"]["IF"] - out["categories"]["vision rule"]["avg"]) / (4 * len(cats))
        assert gap == pytest.approx(expected, abs=1e-9)
    assert official_aggregate(readme_records())["mean_of_category_avgs"] - 53.24 == pytest.approx(0.36, abs=0.01)


def test_paper_subset_without_game_does_not_crash():
    out = official_aggregate(readme_records([c for c in README if c != "game"]))
    assert out["categories_present"] == ["humanity", "science", "hypothetical", "semantic", "vision rule"]
    assert out["metrics"] == pytest.approx({"IF": 49.20, "VC": 69.40, "VF": 77.76, "RC": 25.47}, abs=0.01)
    assert out["overall"] == pytest.approx(55.46, abs=0.01)
    assert list(out["table_iv"]) == ["Overall", "Humanity", "Science", "Hypothesis", "Semantics", "Vision"]
    assert out["table_iv"]["Overall"] == out["overall"]


def test_task_scores_and_table_ii_layout():
    recs = [
        {"instance_id": "ruler/physics/0", "task": "physics", "category": "science", "status": "ok", "scores": {"IF": 2, "VC": 2, "VF": 2, "RC": 2}},
        {"instance_id": "ruler/physics/1", "task": "physics", "category": "science", "status": "ok", "scores": {"IF": 0, "VC": 0, "VF": 0, "RC": 0}},
        {"instance_id": "ruler/color/0", "task": "color", "category": "vision rule", "status": "ok", "scores": {"VC": 2, "VF": 1, "RC": 0, "IF": 0}},
        {"instance_id": "ruler/food/0", "task": "food", "category": "humanity", "status": "ok", "scores": {"IF": 2, "VF": 2}},  # VC, RC absent = 0
    ]
    out = official_aggregate(recs)
    assert out["tasks"]["physics"] == {"score": 50.0, "n": 2}
    assert out["tasks"]["color"]["score"] == pytest.approx(50.0)  # (2 + 1 + 0) / 3 / 2 * 100
    assert out["tasks"]["food"]["score"] == pytest.approx(50.0)  # (2 + 0 + 2 + 0) / 4 / 2 * 100
    assert out["categories"]["humanity"]["VC"] == 0.0
    assert list(out["table_ii"]) == ["Avg", "Foo", "Phy", "Col"]  # the paper's column order
    assert out["mean_of_task_scores"] == pytest.approx(50.0)
    # M(IF) over humanity + science = (100 + 50) / 2; VC (0 + 50 + 100) / 3; VF (100 + 50 + 50) / 3; RC (0 + 50 + 0) / 3
    assert out["overall"] == pytest.approx(fmean([75.0, 50.0, 200 / 3, 50 / 3]))


def test_missing_and_failed_instances_are_counted_not_dropped():
    recs = readme_records()
    recs[0] = {**recs[0], "status": "error", "error": "judge gave no valid reply", "scores": {}}
    recs[1] = {**recs[1], "status": "generated", "scores": {}}
    expected = [r["instance_id"] for r in recs] + ["ruler/chess/7"]  # planned, never recorded
    out = official_aggregate(recs, expected_ids=expected)
    assert (out["n_expected"], out["n_scored"], out["n_error"], out["n_pending"], out["n_missing"]) == (13, 10, 1, 1, 1)
    assert out["complete"] is False
    assert "science" not in out["categories"]  # both science instances unscored
    # The last record of an instance wins: a successful retry replaces the error.
    retried = recs + [readme_records()[0]]
    assert official_aggregate(retried, expected_ids=expected)["n_error"] == 0


def test_nothing_scored_gives_counts_and_no_numbers():
    out = official_aggregate([{"instance_id": "ruler/x/0", "task": "physics", "category": "science", "status": "error", "scores": {}}])
    assert out["overall"] is None and out["mean_of_task_scores"] is None
    assert (out["n_expected"], out["n_scored"], out["n_error"]) == (1, 0, 1)
