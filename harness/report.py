"""One HTML page to look at runs: ``python -m harness.report RUN_DIRS... --out report.html [--baseline frozen]``.

One section per benchmark; in it one row per instance and one column per method, each cell the method's
video (its browser-playable preview, harness.video.write_preview), score and paired difference against the
baseline, the RULER judge's labels, and for vlmteach the teacher's questions and the loop's per-step loss and
P(Yes). A summary table and a plot of the paired differences per category head each section; the rows sort by
the difference against the baseline.

Videos are linked by a path relative to the page, not embedded: a real run's previews are hundreds of MB, which
one HTML file cannot carry, and the browser then loads only the videos one plays. Keep the page where it can
reach the run directories (the same disk, moved together). A preview that is missing, unreadable or older than
its video is made again here from the scored video; where that fails the cell says why.

``?check-videos`` after the page's URL plays every video once, muted, and writes what the browser decoded
(readyState, duration, size, the time played) into the page's ``#video-check`` element (tests/test_report.py
reads it with headless Chromium).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.results.benchmark import official_aggregation, official_warnings
from harness.results.rows import run_rows
from harness.results.runs import RunResults, load_run
from harness.records import STATUS_ERROR, STATUS_GENERATED, STATUS_OK
from harness.rundir import RunDir, atomic_write_text
from harness.types import UserError
from harness.video import preview_problem, write_preview
from harness.vlmteach.trace import VlmTeachTrace

MISSING = "missing"  # planned, no record yet


@dataclass
class Cell:
    """One method's result for one instance, as the page shows it."""

    status: str  # ok | error | generated | missing
    score: float | None = None
    diff: float | None = None  # score minus the baseline's, where both are ok
    src: str | None = None  # the preview's URL relative to the page
    note: str | None = None  # why there is no video, or the record's error beside one
    record: dict[str, Any] = field(default_factory=dict)


@dataclass
class Column:
    label: str
    run: RunResults
    baseline: bool
    rows: list[dict[str, Any]]  # harness.results.rows.run_rows, paired against the baseline where there is one
    warnings: list[str]  # the official aggregation's (e.g. a RULER judge prompt that is not the benchmark's own)


@dataclass
class Section:
    bench: str
    title: str  # which set of paired runs, where a benchmark has several
    baseline: str
    columns: list[Column]
    instances: list[dict[str, str]]  # instance_id, task, category, split
    cells: dict[tuple[str, str], Cell]  # (instance id, column label) -> cell


@dataclass
class PreviewStats:
    reused: int = 0
    made: int = 0
    failed: int = 0


def build_sections(run_dirs: list[Path], out: Path, baseline: str = "frozen",
                   stats: PreviewStats | None = None) -> list[Section]:
    runs = [load_run(p) for p in run_dirs]
    if not runs:
        raise UserError("no run directories given")
    stats = stats if stats is not None else PreviewStats()
    # Runs pair up on the same instances under the same base seed: one section per benchmark and such set.
    sets: dict[tuple[str, Any, tuple[str, ...]], list[RunResults]] = {}
    for run in runs:
        sets.setdefault((run.bench, run.seed, tuple(run.completeness.planned)), []).append(run)
    per_bench = {bench: sum(key[0] == bench for key in sets) for bench, _, _ in sets}
    ordered = sorted(sets.items(), key=lambda kv: (kv[0][0], -len(kv[0][2]), str(kv[0][1])))
    return [_section(bench, group, baseline, out, stats,
                     f" (seed {seed}, {len(planned)} instances)" if per_bench[bench] > 1 else "")
            for (bench, seed, planned), group in ordered]


def _section(bench: str, runs: list[RunResults], baseline: str, out: Path, stats: PreviewStats,
             title: str = "") -> Section:
    base_runs = [r for r in runs if r.method == baseline]
    if len(base_runs) > 1:
        raise UserError(f"{bench}: {len(base_runs)} runs of baseline {baseline!r} "
                        f"({', '.join(str(r.path) for r in base_runs)}); pass only one")
    base = base_runs[0] if base_runs else None
    columns = _columns(runs, base)
    instances = _instances([c.run for c in columns])
    base_scores = {r["instance_id"]: r["score"] for r in base.records if r["status"] == STATUS_OK} if base else {}
    cells: dict[tuple[str, str], Cell] = {}
    for column in columns:
        by_id = {r["instance_id"]: r for r in column.run.records}
        for iid in instances:
            cells[(iid, column.label)] = _cell(column, by_id.get(iid), iid, base_scores, out, stats)
    return Section(bench, title, baseline if base is not None else "", columns,
                   [instances[i] for i in sorted(instances)], cells)


def _columns(runs: list[RunResults], base: RunResults | None) -> list[Column]:
    """The baseline first, then by method; runs sharing a method are told apart by their directory."""
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.method] = counts.get(r.method, 0) + 1
    columns = []
    for r in sorted(runs, key=lambda r: (r is not base, r.method, r.path.name)):
        official = official_aggregation(r)
        columns.append(Column(r.method + (f" @{r.path.name}" if counts[r.method] > 1 else ""), r, r is base,
                              run_rows(r, baseline=base if base is not None and r is not base else None),
                              official_warnings(official)))
    return columns


def _instances(runs: list[RunResults]) -> dict[str, dict[str, str]]:
    """Every instance a run planned (with its groups, where a manifest gives them) or recorded."""
    instances: dict[str, dict[str, str]] = {}
    for r in runs:
        for iid in r.completeness.planned:
            if iid in r.membership:
                instances.setdefault(iid, {"instance_id": iid, **r.membership[iid]})
        for rec in r.records:
            instances.setdefault(rec["instance_id"], {"instance_id": rec["instance_id"], "task": rec["task"],
                                                      "category": rec["category"], "split": rec["split"]})
    return instances


def _cell(column: Column, record: dict[str, Any] | None, iid: str, base_scores: dict[str, float], out: Path,
          stats: PreviewStats) -> Cell:
    if record is None:
        planned = iid in column.run.completeness.planned
        return Cell(MISSING, note="no record yet (planned, not run)" if planned else "not in this run's plan")
    src, problem = playable(RunDir(column.run.path), record, out, stats)
    if record["status"] == STATUS_ERROR and not record.get("video"):
        problem = None  # the error says why (a generate-stage error writes no video)
    score = record["score"] if record["status"] == STATUS_OK else None
    diff = score - base_scores[iid] if score is not None and not column.baseline and iid in base_scores else None
    note = "; ".join(n for n in (_record_note(record), problem) if n) or None
    return Cell(record["status"], score, diff, src, note, record)


def _record_note(record: dict[str, Any]) -> str | None:
    if record["status"] == STATUS_ERROR:
        return f"error ({record.get('error_stage') or 'unknown stage'}): {record.get('error') or 'no message'}"
    if record["status"] == STATUS_GENERATED:
        return "generated, not scored yet"
    return None


def playable(run_dir: RunDir, record: dict[str, Any], out: Path, stats: PreviewStats) -> tuple[str | None, str | None]:
    """(the preview's URL relative to the page, None), making the preview from the scored video where it is missing,
    unreadable or older; or (None, why there is nothing to play)."""
    if not record.get("video"):
        return None, "no video recorded"
    video = run_dir.path / record["video"]
    if not video.is_file():
        return None, f"the video {record['video']} is missing"
    preview = run_dir.preview_of(record["video"])
    problem = preview_problem(preview)
    if problem is None and preview.stat().st_mtime < video.stat().st_mtime:
        problem = "the preview is older than its video"
    if problem is None:
        stats.reused += 1
    else:
        try:
            write_preview(video, preview)
            stats.made += 1
        except Exception as exc:  # noqa: BLE001 - an undecodable video or an unwritable folder: said in its cell
            stats.failed += 1
            return None, f"{problem}, and none could be made from {record['video']}: {type(exc).__name__}: {exc}"
    relative = os.path.relpath(preview.resolve(), out.resolve().parent)
    return urllib.parse.quote(Path(relative).as_posix()), None


# -- reading a record's score details (defensively: the benchmark's shape) and trace -------------


def judge_labels(record: dict[str, Any]) -> list[tuple[str, str]]:
    """The RULER judge's (metric, label) per checklist question, from the score details."""
    details = _dict(record.get("score_details"))
    labels = details.get("labels")
    if not isinstance(labels, list):
        return []
    metrics = details.get("metrics") if isinstance(details.get("metrics"), list) else []
    return [(str(metrics[i]) if i < len(metrics) else f"q{i + 1}", str(label)) for i, label in enumerate(labels)]


def loop_log(record: dict[str, Any]) -> dict[str, Any] | None:
    """A vlmteach record's questions and per-step loss and mean P(Yes), or None where the trace has no loop."""
    trace = record.get("trace")  # a missing instance's cell has no record
    if not isinstance(trace, VlmTeachTrace) or not trace.per_step:
        return None
    p_yes = []
    for step in trace.per_step:
        finite = [p for p in step.p_yes if math.isfinite(p)]
        p_yes.append(sum(finite) / len(finite) if finite else None)
    return {"losses": [step.loss for step in trace.per_step], "p_yes": p_yes,
            "questions": list(zip(trace.loss_roles, trace.loss_questions)), "stopped_early": trace.stopped_early,
            "steps_used": trace.steps_used, "source": trace.query_source}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


# -- command line --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    from harness.report_page import render
    from harness.table import find_run_dirs

    parser = argparse.ArgumentParser(prog="python -m harness.report", description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path, help="run directories, or folders holding them")
    parser.add_argument("--out", type=Path, default=Path("report.html"),
                        help="the page to write (default: report.html)")
    parser.add_argument("--baseline", default="frozen", help="method every other is compared with (default: frozen)")
    args = parser.parse_args(argv)
    stats = PreviewStats()
    try:
        sections = build_sections(find_run_dirs(args.run_dirs), args.out, args.baseline, stats)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, render(sections, stats))
    videos = stats.reused + stats.made + stats.failed
    print(f"written: {args.out} ({sum(len(s.instances) for s in sections)} instances, {videos} videos: "
          f"{stats.made} previews made now, {stats.failed} without one)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
