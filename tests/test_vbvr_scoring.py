"""Scoring VBVR-Bench videos through the official VBVR-EvalKit scorers (task-specific mode).

Most tests need the optional extra (``pip install -e '.[vbvr]'``) and are skipped without it; the
ones at the top check the adapter's own guards and run everywhere.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.vbvr import VbvrBenchmark, tasks
from benchmarks.vbvr import official_aggregate
from benchmarks.vbvr.official import INSTALL_HINT, ScorerFailure
from benchmarks.vbvr.synthetic import synthetic_clip, write_synthetic_bench
from harness.records import Record
from harness.runner import _describe
from harness.types import Instance, ScoringError, UserError
from harness.video import read_mp4, write_mp4

G3 = "G-3_stable_sort_data-generator"
O47 = "O-47_sliding_puzzle_data-generator"
O18 = "O-18_glass_refraction_data-generator"
G24 = "G-24_separate_objects_no_spin_data-generator"
G54 = "G-54_connecting_color_data-generator"
TASKS = [G3, O47, O18, G24, G54]

needs_upstream = pytest.mark.skipif(importlib.util.find_spec("vbvr_bench") is None, reason=INSTALL_HINT)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_bench(tmp_path_factory.mktemp("vbvr") / "VBVR-Bench", TASKS, samples_per_task=2)


def _instances(data_dir: Path, **kwargs) -> dict[str, Instance]:
    return {i.id: i for i in VbvrBenchmark(data_dir=str(data_dir), **kwargs).instances()}


def _still_video(inst: Instance, path: Path) -> Path:
    """A wrong answer: the first frame held for the whole clip."""
    write_mp4(path, np.repeat(inst.first_frame[None], inst.num_frames, axis=0), fps=inst.fps)
    return path


# -- guards that need no upstream package ----------------------------------------------------------


def test_missing_video_or_gt_is_a_scoring_error(data_dir: Path, tmp_path: Path) -> None:
    bench = VbvrBenchmark(data_dir=str(data_dir))
    inst = bench.instances()[0]
    with pytest.raises(ScoringError, match="generated video missing"):
        bench.score(inst, tmp_path / "none.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(ScorerFailure, match="empty"):  # upstream collects it and scores it 0
        bench.score(inst, tmp_path / "empty.mp4")
    no_gt = dataclasses.replace(inst, reference={**inst.reference, "gt_final_frame": str(tmp_path / "gone.png")})
    with pytest.raises(ScoringError, match="ground truth file missing"):
        bench.score(no_gt, Path(inst.reference["gt_video"]))


def test_absent_scorer_package_says_how_to_install(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vbvr_bench", None)  # import now fails as if not installed
    monkeypatch.setitem(sys.modules, "vbvr_bench.evaluators", None)
    bench = VbvrBenchmark(data_dir=str(data_dir))
    inst = bench.instances()[0]
    with pytest.raises(UserError, match=r"pip install -e '\.\[vbvr\]'.*VBVR-EvalKit@275472ffe5ccf76f3a41fb55379ce170397c0c12"):
        bench.score(inst, Path(inst.reference["gt_video"]))


# -- against the official scorers --------------------------------------------------------------------


@needs_upstream
def test_project_task_table_equals_the_official_maps() -> None:
    import run_evaluation
    from vbvr_bench.evaluators import TASK_CATEGORY_MAP, TASK_EVALUATOR_MAP, get_split

    assert tasks.project_category_map() == TASK_CATEGORY_MAP
    assert set(tasks.TASK_SPLIT) == set(TASK_EVALUATOR_MAP)
    assert {t: tasks.SPLIT_LABELS[s] for t, s in tasks.TASK_SPLIT.items()} == {t: get_split(t) for t in TASK_EVALUATOR_MAP}
    assert {tasks.SPLIT_FOLDERS[s]: label for s, label in tasks.SPLIT_LABELS.items()} == run_evaluation.FOLDER_TO_SPLIT


@needs_upstream
def test_scores_equal_run_evaluation(data_dir: Path, tmp_path: Path) -> None:
    import cv2
    import run_evaluation

    bench = VbvrBenchmark(data_dir=str(data_dir))
    seen = set()
    for inst in bench.instances():
        for video in (Path(inst.reference["gt_video"]), _still_video(inst, tmp_path / f"{inst.task}-{inst.reference['index']}.mp4")):
            ours = bench.score(inst, video)
            gt = run_evaluation.find_gt_info(inst.task, inst.reference["index"], str(data_dir))
            official = run_evaluation.evaluate_single_video(str(video), inst.task, gt, "cpu")
            assert "error" not in official
            assert ours.score == official["score"] and ours.scores == {"task_specific": official["score"]}
            assert ours.details["mode"] == "task_specific" and ours.details["opencv"] == cv2.__version__
            assert ours.details["safe_distance_patch"] == "applied"
            assert ours.details["protocol"].startswith("official: GT frame count")
            assert ours.details["video_frame_count"] == len(read_mp4(video))
            seen.add(round(ours.score, 6))
    assert len(seen) > 3  # the scorers discriminate between these videos


@needs_upstream
def test_safe_distance_patch_is_a_recorded_switch(data_dir: Path) -> None:
    import run_evaluation

    inst = _instances(data_dir)[f"vbvr/{G24}/00000"]
    video = Path(inst.reference["gt_video"])
    gt = run_evaluation.find_gt_info(G24, 0, str(data_dir))

    unpatched = VbvrBenchmark(data_dir=str(data_dir), patch_safe_distance=False)
    with pytest.raises(ScoringError, match="name 'safe_distance' is not defined"):
        unpatched.score(inst, video)
    upstream = run_evaluation.evaluate_single_video(str(video), G24, gt, "cpu")
    assert upstream["score"] == 0.0 and "safe_distance" in upstream["error"]  # the bug, scored 0 upstream

    patched = VbvrBenchmark(data_dir=str(data_dir), patch_safe_distance=True).score(inst, video)
    assert patched.details["safe_distance_patch"] == "applied" and patched.score > 0.5
    with pytest.raises(ScoringError, match="safe_distance"):  # switching back unbinds the name again
        unpatched.score(inst, video)


@needs_upstream
def test_unknown_task_is_refused_not_base_evaluated(data_dir: Path) -> None:
    bench = VbvrBenchmark(data_dir=str(data_dir))
    inst = bench.instances()[0]
    renamed = dataclasses.replace(inst, task="G-999_made_up_data-generator")
    with pytest.raises(ScoringError, match="no official VBVR-EvalKit scorer"):
        bench.score(renamed, Path(inst.reference["gt_video"]))


@needs_upstream
def test_undecodable_video_is_an_error_not_a_zero(data_dir: Path, tmp_path: Path) -> None:
    bench = VbvrBenchmark(data_dir=str(data_dir))
    inst = _instances(data_dir)[f"vbvr/{O47}/00000"]
    garbage = tmp_path / "00000.mp4"
    garbage.write_bytes(b"\x00not an mp4" * 100)
    with pytest.raises(ScoringError):
        bench.score(inst, garbage)


def _record(inst: Instance, bench: VbvrBenchmark, video: Path) -> dict:
    """The record the runner writes after scoring ``video`` (an error keeps the runner's message)."""
    base = dict(instance_id=inst.id, bench="vbvr", task=inst.task, category=inst.category, split=inst.split,
                method="frozen", seed=0)
    try:
        score = bench.score(inst, video)
    except ScoringError as exc:
        return asdict(Record(**base, status="error", error=_describe(exc), error_stage="score"))
    return asdict(Record(**base, status="ok", score=score.score))


@needs_upstream
def test_official_means_count_scorer_failures_as_zero_like_run_evaluation(data_dir: Path, tmp_path: Path) -> None:
    import run_evaluation

    bench = VbvrBenchmark(data_dir=str(data_dir), patch_safe_distance=False)  # G-24/G-54 raise, as upstream
    videos: dict[str, Path | None] = {}
    for n, inst in enumerate(bench.instances()):
        path = tmp_path / f"{n}.mp4"
        if inst.task in (G3, O47) and inst.reference["index"] == 1:
            path.write_bytes(b"\x00not an mp4" * 100 if inst.task == G3 else b"")  # undecodable / empty
        elif inst.task == O18 and inst.reference["index"] == 1:
            path = None  # never generated: upstream does not collect it
        else:
            path = Path(inst.reference["gt_video"]) if n % 2 else _still_video(inst, path)
        videos[inst.id] = path
    records = [_record(inst, bench, videos[inst.id] or tmp_path / "absent.mp4") for inst in bench.instances()]
    ours = official_aggregate(records, expected_ids=list(videos))

    upstream = run_evaluation.init_results("frozen", str(tmp_path))
    for inst in bench.instances():
        if videos[inst.id] is None:
            continue
        gt = run_evaluation.find_gt_info(inst.task, inst.reference["index"], str(data_dir))
        result = run_evaluation.evaluate_single_video(str(videos[inst.id]), inst.task, gt, "cpu")
        run_evaluation.aggregate_score(upstream, {"score": float(result.get("score", 0.0)), "task_name": inst.task,
                                                  "split": tasks.SPLIT_LABELS[inst.split], "category": inst.category})
    run_evaluation.finalize_summary(upstream)

    for split in ("In_Domain", "Out_of_Domain", "overall"):
        theirs = upstream["summary"][split]
        assert ours[split]["num_samples"] == theirs["num_samples"]
        assert ours[split]["mean_score"] == pytest.approx(theirs["mean_score"], abs=1e-12)
        assert ours[split]["by_task"] == pytest.approx(theirs["by_task"], abs=1e-12)
        assert ours[split]["by_category"] == pytest.approx(theirs["by_category"], abs=1e-12)
    # 2 x G-24 (NameError inside the scorer), one undecodable, one empty video
    assert ours["n_scorer_failures"] == 4 and ours["overall"]["num_samples"] == 9
    assert all(msg.startswith("ScorerFailure: ") for msg in ours["scorer_failures"].values())
    assert "safe_distance" in ours["scorer_failures"][f"vbvr/{G24}/00000"]
    assert (ours["n_missing"], ours["n_error"], ours["complete"]) == (0, 1, False)  # the O-18 video never made
    assert any(n.startswith("4 video(s) the official scorer failed on") for n in ours["notes"])


@needs_upstream
def test_opencv_5_is_refused(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cv2

    monkeypatch.setattr(cv2, "__version__", "5.0.0")
    bench = VbvrBenchmark(data_dir=str(data_dir))
    inst = bench.instances()[0]
    with pytest.raises(UserError, match="opencv-python<5"):
        bench.score(inst, Path(inst.reference["gt_video"]))


def test_synthetic_clip_moves_right() -> None:
    clip = synthetic_clip(96, 128, 9, seed=0)
    cols = [np.nonzero((clip[t] != 255).any(axis=(0, 2)))[0] for t in (0, 8)]
    assert cols[0].min() < cols[1].min() and cols[1].max() == 128 - 3
