"""VBVR-Bench official aggregation on synthetic records with hand-computed means."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from benchmarks.vbvr import TABLE_COLUMNS, official_aggregate, tasks
from benchmarks.vbvr.official import PINNED_COMMIT
from harness.records import Record

# Per-sample score by (split, category): a full run with these has hand-computable means.
LEVEL = {
    ("id", "Abstraction"): 0.1, ("id", "Knowledge"): 0.2, ("id", "Perception"): 0.3, ("id", "Spatiality"): 0.4,
    ("id", "Transformation"): 0.5, ("ood", "Abstraction"): 0.6, ("ood", "Knowledge"): 0.7,
    ("ood", "Perception"): 0.8, ("ood", "Spatiality"): 0.9, ("ood", "Transformation"): 1.0,
}
G3 = "G-3_stable_sort_data-generator"  # id, Perception
G5 = "G-5_multi_object_placement_data-generator"  # id, Perception
G24 = "G-24_separate_objects_no_spin_data-generator"  # ood, Transformation


def record(task: str, idx: int, score: float | None, status: str = "ok", details: dict | None = None,
           error: str = "boom", stage: str = "generate") -> dict:
    split = tasks.TASK_SPLIT[task]
    r = Record(
        instance_id=tasks.instance_id(task, idx), bench="vbvr", task=task, category=tasks.category(task),
        split=split, method="frozen", seed=0, status=status, score=score if status == "ok" else None,
        error=None if status == "ok" else error, error_stage=None if status == "ok" else stage,
        score_details=details or {},
    )
    return json.loads(r.to_json())  # exactly what a records.jsonl line holds


def full_run(details: dict | None = None) -> list[dict]:
    return [
        record(task, idx, LEVEL[(split, cat)], details=details)
        for split, by_cat in tasks.TASKS_BY_SPLIT.items()
        for cat, names in by_cat.items()
        for task in names
        for idx in range(tasks.SAMPLES_PER_TASK)
    ]


def test_full_run_gives_the_table_i_row() -> None:
    out = official_aggregate(full_run())
    # ID: (15*.1 + 9*.2 + 11*.3 + 8*.4 + 7*.5) / 50; OOD: (8*.6 + 5*.7 + 19*.8 + 5*.9 + 13*1.0) / 50
    id_avg, ood_avg = 13.3 / 50, 41.0 / 50
    assert out["In_Domain"]["mean_score"] == pytest.approx(id_avg)
    assert out["Out_of_Domain"]["mean_score"] == pytest.approx(ood_avg)
    assert out["overall"]["mean_score"] == pytest.approx((id_avg + ood_avg) / 2)  # equal splits
    assert out["In_Domain"]["num_samples"] == out["Out_of_Domain"]["num_samples"] == 250
    row = out["table_row"]
    assert list(row) == list(TABLE_COLUMNS) == out["table_columns"]
    assert row["ID Abst"] == pytest.approx(0.1) and row["ID Trans"] == pytest.approx(0.5)
    assert row["OOD Perc"] == pytest.approx(0.8) and row["OOD Trans"] == pytest.approx(1.0)
    # overall by_category mixes the splits by sample count: Perception = (55*.3 + 95*.8) / 150
    assert out["overall"]["by_category"]["Perception"] == pytest.approx((55 * 0.3 + 95 * 0.8) / 150)
    assert out["In_Domain"]["by_task"][G3] == pytest.approx(0.3) and len(out["overall"]["by_task"]) == 100
    assert (out["n_expected"], out["n_scored"], out["n_error"], out["n_missing"]) == (500, 500, 0, 0)
    assert out["complete"] and not any("INCOMPLETE" in n for n in out["notes"])
    assert out["safe_distance_tasks"][G24] == pytest.approx(1.0)


def test_errors_and_missing_are_counted_never_zeros() -> None:
    expected = [tasks.instance_id(t, k) for t in (G3, G5) for k in range(5)]
    recs = [record(G3, k, 1.0) for k in range(5)]
    recs += [record(G5, 0, 0.0), record(G5, 1, 0.0), record(G5, 2, None, "error"), record(G5, 3, None, "error")]
    # G5 sample 4 has no record at all
    out = official_aggregate(recs, expected_ids=expected)
    # mean over scored samples (5 ones, 2 zeros), not a mean of task means (0.5), not errors as 0 (0.5)
    assert out["In_Domain"]["mean_score"] == pytest.approx(5 / 7)
    assert out["overall"]["mean_score"] == pytest.approx(5 / 7)
    assert out["In_Domain"]["by_task"] == pytest.approx({G3: 1.0, G5: 0.0})
    assert out["Out_of_Domain"]["mean_score"] is None and out["table_row"]["OOD Avg"] is None
    assert (out["n_expected"], out["n_scored"], out["n_error"], out["n_missing"]) == (10, 7, 2, 1)
    assert not out["complete"]
    assert any("INCOMPLETE: 7 of 10" in n and "1 missing, 2 errors" in n for n in out["notes"])


def test_scorer_failures_count_zero_in_the_official_means_other_errors_do_not() -> None:
    expected = [tasks.instance_id(t, k) for t in (G3, G24) for k in range(5)]
    failure = "ScorerFailure: official scorer for G-24 failed on 00003.mp4: Cannot open video (at official.py:1)"
    recs = [record(G3, k, 0.9) for k in range(5)] + [record(G24, k, 0.6) for k in range(3)]
    recs += [record(G24, 3, None, "error", error=failure, stage="score"),
             record(G24, 4, None, "error", error="ScoringError: ground truth file missing", stage="score")]
    out = official_aggregate(recs, expected_ids=expected)
    # 0.9 x 5 + 0.6 x 3 + 0 (the scorer failure) over 9 samples; the missing-GT error stays out
    assert out["overall"]["mean_score"] == pytest.approx((4.5 + 1.8) / 9)
    assert out["Out_of_Domain"]["by_task"][G24] == pytest.approx(1.8 / 4)
    assert out["Out_of_Domain"]["num_samples"] == 4 and out["overall"]["num_samples"] == 9
    assert (out["n_scored"], out["n_scorer_failures"], out["n_error"]) == (8, 1, 1)
    assert out["scorer_failures"] == {tasks.instance_id(G24, 3): failure}  # the scorer's message, kept
    assert not out["complete"] and any("INCOMPLETE: 9 of 10" in n for n in out["notes"])
    # a generation failure is not a scorer failure even if its text looked like one
    gen = official_aggregate(recs[:-2] + [record(G24, 3, None, "error", error=failure)], expected_ids=expected)
    assert gen["n_scorer_failures"] == 0 and gen["overall"]["num_samples"] == 8


def test_subset_run_is_incomplete_against_the_full_benchmark() -> None:
    out = official_aggregate([record(G3, k, 0.5) for k in range(5)])
    assert (out["n_expected"], out["n_scored"], out["n_missing"]) == (500, 5, 495)
    assert not out["complete"]


def test_latest_record_wins_and_unscored_and_unexpected_are_counted() -> None:
    expected = [tasks.instance_id(G3, k) for k in range(3)]
    recs = [record(G3, 0, None, "error"), record(G3, 0, 0.25), record(G3, 1, None, "generated"),
            record(G3, 2, 0.75), record(G24, 0, 1.0)]
    out = official_aggregate(recs, expected_ids=expected)
    assert out["overall"]["mean_score"] == pytest.approx(0.5)
    assert (out["n_scored"], out["n_error"], out["n_unscored"], out["n_unexpected"]) == (2, 0, 1, 1)


def test_notes_report_patch_opencv_protocol_and_commit() -> None:
    details = {"safe_distance_patch": "applied", "opencv": "4.14.0", "protocol": "official: GT frame count",
               "vbvr_bench_commit": PINNED_COMMIT}
    notes = "\n".join(official_aggregate(full_run(details))["notes"])
    assert "safe_distance import patch for G-24 / G-54: applied" in notes
    assert "OpenCV: 4.14.0" in notes and "generation protocol: official: GT frame count" in notes
    assert "differ from the pinned" not in notes
    mixed = full_run(details)
    mixed[-1]["score_details"] = {**details, "safe_distance_patch": "off", "vbvr_bench_commit": "abc"}
    notes = "\n".join(official_aggregate(mixed)["notes"])
    assert "G-24 / G-54: applied, off" in notes and "commit(s) abc differ from the pinned 275472f" in notes
    assert "G-24 / G-54: unknown" in "\n".join(official_aggregate(full_run())["notes"])


def test_unknown_split_is_refused() -> None:
    bad = record(G3, 0, 0.5)
    bad["split"] = "test"
    with pytest.raises(ValueError, match="split"):
        official_aggregate([bad], expected_ids=[bad["instance_id"]])


def test_accepts_records_as_dataclass_dicts() -> None:
    r = Record(instance_id=tasks.instance_id(G3, 0), bench="vbvr", task=G3, category="Perception", split="id",
               method="frozen", seed=0, status="ok", score=0.4)
    assert official_aggregate([asdict(r)], expected_ids=[r.instance_id])["table_row"]["ID Perc"] == pytest.approx(0.4)
