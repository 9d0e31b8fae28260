"""Adapter to the official VBVR-EvalKit scorers (optional extra ``vbvr``; never re-implemented here).

Scoring follows ``run_evaluation.py`` of VBVR-EvalKit: ``get_evaluator(task).evaluate(eval_info,
task_specific_only=True)`` with the GT first frame, final frame and video of the sample. Where the
upstream code would hide a failure, this adapter raises instead:

- an unknown task name raises (upstream silently falls back to ``BaseEvaluator``);
- a scorer exception, an empty or undecodable video raise ``ScorerFailure``: upstream scores these
  0 and keeps them in every mean, so the record is an error carrying the scorer's message and the
  official aggregation (benchmarks.vbvr.aggregate) counts it 0, with the count shown;
- a missing video or ground-truth file raises a plain ``ScoringError`` (upstream never collects a
  missing video: it is reported as incomplete, not scored 0);
- OpenCV 5 raises ``UserError`` (it breaks five upstream scorers: O-18, O-19, O-23, O-34, O-53).

``Out_of_Domain_50_part1.py`` calls ``safe_distance`` without importing it (G-24, G-54). With
``patch_safe_distance`` the adapter binds upstream's own ``vbvr_bench.utils.safe_distance`` into that
module before scoring; without it the upstream NameError surfaces as a ``ScoringError``.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from harness.types import Score, ScoringError, UserError

REPO_URL = "https://github.com/Video-Reason/VBVR-EvalKit"
PINNED_COMMIT = "275472ffe5ccf76f3a41fb55379ce170397c0c12"
INSTALL_HINT = (
    "VBVR-Bench scoring needs the official VBVR-EvalKit scorers (package vbvr_bench, not on PyPI). "
    "Install the project's extra: pip install -e '.[vbvr]'  "
    f"(or: pip install 'vbvr-bench @ git+{REPO_URL}@{PINNED_COMMIT}' 'opencv-python<5' 'opencv-python-headless<5')"
)
MODE = "task_specific"  # run_evaluation.py's mode; the weighted 5-dimension score is not comparable

_PATCHED_MODULE = "vbvr_bench.evaluators.Out_of_Domain_50_part1"
_PATCH_MARK = "_vlmteach_injected_safe_distance"


class ScorerFailure(ScoringError):
    """A failure ``run_evaluation.py`` scores 0 (its ``evaluate_single_video`` catches it).

    The runner records its class name first in the record's ``error`` ("ScorerFailure: ..."), which
    is how the official aggregation finds these records.
    """


def _import_evaluators() -> ModuleType:
    try:
        return importlib.import_module("vbvr_bench.evaluators")
    except ImportError as exc:
        raise UserError(f"{INSTALL_HINT}\n(import failed: {exc})") from exc


@functools.cache
def category_map() -> dict[str, str] | None:
    """Upstream ``TASK_CATEGORY_MAP`` when vbvr_bench is importable, else None."""
    try:
        evaluators = importlib.import_module("vbvr_bench.evaluators")
    except ImportError:
        return None
    return dict(evaluators.TASK_CATEGORY_MAP)


def installed_commit() -> str:
    """The VBVR-EvalKit commit pip recorded at install time (PEP 610), or 'unknown'."""
    try:
        direct_url = importlib.metadata.distribution("vbvr-bench").read_text("direct_url.json")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
    if not direct_url:
        return "unknown"
    return json.loads(direct_url).get("vcs_info", {}).get("commit_id", "unknown")


def set_safe_distance_patch(enabled: bool) -> str:
    """Bind (or unbind) upstream's ``safe_distance`` in the module that forgot to import it.

    Returns the state recorded with every score: ``applied``, ``off``, or ``not_needed`` when the
    installed upstream already imports the name itself.
    """
    module = importlib.import_module(_PATCHED_MODULE)
    injected = getattr(module, _PATCH_MARK, False)
    if "safe_distance" in vars(module) and not injected:
        return "not_needed"
    if enabled:
        module.safe_distance = importlib.import_module("vbvr_bench.utils").safe_distance
        setattr(module, _PATCH_MARK, True)
        return "applied"
    if injected:
        del module.safe_distance
        delattr(module, _PATCH_MARK)
    return "off"


def _opencv_version() -> str:
    import cv2  # installed with the extra; imported by vbvr_bench already

    version = cv2.__version__
    if int(version.split(".")[0]) >= 5:
        raise UserError(
            f"OpenCV {version} is installed; VBVR-EvalKit needs OpenCV < 5 (OpenCV 5 changes HoughLinesP "
            "and breaks the O-18, O-19, O-23, O-34 and O-53 scorers). "
            "Run: pip install 'opencv-python<5' 'opencv-python-headless<5'"
        )
    return version


def _jsonable(obj: Any) -> Any:
    """Upstream details hold numpy scalars and tuples; records need plain JSON."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.generic, np.ndarray)):
        return obj.tolist()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return repr(obj)


class OfficialScorer:
    """Scores one generated video with the official task scorer, task-specific mode."""

    def __init__(self, *, patch_safe_distance: bool = True):
        self.patch_safe_distance = patch_safe_distance

    def provenance(self) -> dict[str, Any]:
        """What every score records: mode, patch state, OpenCV version, VBVR-EvalKit commit."""
        _import_evaluators()
        commit = installed_commit()
        return {
            "mode": MODE,
            "safe_distance_patch": set_safe_distance_patch(self.patch_safe_distance),
            "opencv": _opencv_version(),
            "vbvr_bench_commit": commit,
            "vbvr_bench_pinned": commit == PINNED_COMMIT,
        }

    def score(self, *, task: str, video: Path, gt_first_frame: Path, gt_final_frame: Path, gt_video: Path,
              prompt: str) -> Score:
        for gt in (gt_first_frame, gt_final_frame, gt_video):
            if not Path(gt).is_file():
                raise ScoringError(f"ground truth file missing: {gt} (re-download VBVR-Bench-Data)")
        video = Path(video)
        if not video.is_file():
            raise ScoringError(f"generated video missing: {video}")
        if video.stat().st_size == 0:  # upstream collects the file and fails to open it: 0
            raise ScorerFailure(f"generated video is empty: {video}")
        evaluators = _import_evaluators()
        provenance = self.provenance()  # also (re)applies this scorer's patch choice
        if task not in evaluators.TASK_EVALUATOR_MAP:
            raise ScoringError(
                f"no official VBVR-EvalKit scorer for task {task!r} (upstream would silently fall back to "
                "BaseEvaluator); check the task name against VBVR-EvalKit's TASK_EVALUATOR_MAP"
            )

        eval_info = {  # the keys run_evaluation.py passes (evaluate_single_video + find_gt_info)
            "video_path": str(video),
            "task_name": task,
            "no_ssim_fallback": True,
            "gt_video_path": str(gt_video),
            "gt_first_frame": str(gt_first_frame),
            "gt_final_frame": str(gt_final_frame),
            "prompt": prompt,
        }
        evaluator = evaluators.get_evaluator(task, device="cpu")  # rule-based, numpy/OpenCV only
        try:
            result = evaluator.evaluate(eval_info, task_specific_only=True)
        except Exception as exc:  # evaluate() normally catches; anything escaping is still a scorer failure
            raise ScorerFailure(f"official scorer for {task} raised {type(exc).__name__}: {exc}") from exc
        details = result.get("details", {})
        if "error" in result:
            raise ScorerFailure(f"official scorer for {task} failed on {video.name}: {result['error']}")
        if not details.get("video_frame_count"):
            raise ScorerFailure(f"OpenCV decoded no frames from {video}; write H.264 or mp4v mp4")
        if not details.get("task_specific_only"):
            raise ScoringError(f"official scorer for {task} did not run in task-specific mode")
        value = float(result["score"])
        return Score(
            score=value,
            scores={"task_specific": value},
            details={
                **provenance,
                "video_frame_count": int(details["video_frame_count"]),
                "gt_frame_count": _jsonable(details.get("gt_frame_count")),
                "frame_normalization": details.get("frame_normalization"),
                "task_specific_details": _jsonable(details.get("task_specific_details", {})),
            },
        )
