"""python -m harness.report: the page's rows, cells, differences and previews, and (in headless Chromium) that its
videos play."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from agg_fixtures import IDS, frozen_scores, loop_fields, write_run
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from harness.results.summary import write_run_tables
from harness.config import CONF_DIR
from harness.report import PreviewStats, build_sections, main
from harness.report_page import render
from harness.rundir import RunDir
from harness.runner import Runner
from harness.sinks import NullSink
from harness.video import preview_problem, read_mp4, write_mp4

CLIP = np.stack([np.full((16, 16, 3), 40 * t, np.uint8) + np.arange(16, dtype=np.uint8)[:, None, None] * 8
                 for t in range(6)])
INSTALL = "sudo apt-get install -y chromium"


def _with_videos(run: RunDir) -> RunDir:
    """The lossless video of every record that names one (as the runner writes it), and no preview."""
    for record in run.latest_records().values():
        if record.get("video") and record["status"] != "error":
            write_mp4(run.path / record["video"], CLIP, fps=8)
    return run


def _vlmteach_fields(frozen: dict[str, float], scores: dict[str, float]) -> dict[str, dict]:
    fields = loop_fields(frozen, scores)
    for iid in fields:
        fields[iid]["trace"]["loss_questions"] = ["Does the agent reach the goal?", "Is <the> wall intact?"]
    return fields


def _pair(tmp_path: Path) -> tuple[RunDir, RunDir, dict[str, float]]:
    frozen = frozen_scores()
    better = {iid: s + 0.01 * (i % 7) * (-1) ** i for i, (iid, s) in enumerate(sorted(frozen.items()))}
    base = _with_videos(write_run(tmp_path / "runs" / "frozen", "frozen", frozen))
    fields = _vlmteach_fields(frozen, better)
    fields[IDS[0]].update(video=None, error_stage="generate")  # a generate-stage error writes no video
    taught = _with_videos(write_run(tmp_path / "runs" / "vlmteach", "vlmteach", better, errors={IDS[0]},
                                    missing={IDS[-1]}, fields=fields))
    return base, taught, {iid: better[iid] - frozen[iid] for iid in IDS if iid not in (IDS[0], IDS[-1])}


def _rows(page: str) -> dict[str, str]:
    """instance id -> its <tr ...> row."""
    return dict(re.findall(r'<tr data-id="([^"]+)"([^>]*>.*?)</tr>', page, flags=re.DOTALL))


def test_one_row_per_instance_one_column_per_method_with_paired_differences_and_placeholders(tmp_path):
    base, taught, diffs = _pair(tmp_path)
    out = tmp_path / "site" / "report.html"
    assert main([str(base.path), str(taught.path), "--out", str(out)]) == 0
    page = out.read_text()
    rows = _rows(page)
    assert sorted(rows) == IDS  # the missing instance too: planned by the manifest
    assert re.search(r"<th>frozen \(baseline\)</th><th>vlmteach</th>", page)
    for iid, diff in diffs.items():
        assert float(re.search(r'data-diff1="([^"]*)"', rows[iid]).group(1)) == pytest.approx(diff)
        assert rows[iid].count("<video ") == 2 and 'data-diff0=""' in rows[iid]  # the baseline has no difference
    # the errored and the missing instance: a placeholder with the record's reason, and no difference
    assert 'data-diff1=""' in rows[IDS[0]] and '<div class="placeholder">error (generate): boom</div>' in rows[IDS[0]]
    assert '<div class="placeholder">no record yet (planned, not run)</div>' in rows[IDS[-1]]
    # the vlmteach log: the per-step curve (two evaluations) and the questions, escaped
    one = rows[IDS[1]]
    assert len(re.search(r'class="loss"[^>]*points="([^"]+)"', one).group(1).split()) == 2
    assert "Is &lt;the&gt; wall intact?" in one and "Is <the>" not in page
    assert "teacher's questions (teacher): 2" in one  # where they came from: the trace's query_source
    # videos are linked relative to the page, to previews made now from the lossless files
    src = html.unescape(re.search(r'<video src="([^"]+)"', rows[IDS[1]]).group(1))
    assert src.startswith("../runs/frozen/previews/")
    preview = (out.parent / src).resolve()
    assert preview == base.preview_of(f"videos/{IDS[1]}.mp4").resolve() and preview_problem(preview) is None
    assert np.abs(read_mp4(preview).astype(int) - read_mp4(base.path / f"videos/{IDS[1]}.mp4").astype(int)).mean() < 3


def test_the_summary_shows_the_paired_difference_and_plots_it_per_category(tmp_path):
    base, taught, diffs = _pair(tmp_path)
    (section,) = build_sections([base.path, taught.path], tmp_path / "r.html")
    page = render([section], PreviewStats())
    overall = next(r for r in section.columns[1].rows if r["level"] == "overall")
    assert overall["diff_mean"] == pytest.approx(np.mean(list(diffs.values())))
    assert f"{overall['diff_mean']:+.3f}" in page
    plot = re.search(r'<svg class="summary".*?</svg>', page, flags=re.DOTALL).group(0)
    # one dot per paired instance in "all" and again in its category (A or B)
    assert plot.count('class="dot"') == 2 * len(diffs)
    assert ">all</text>" in plot and ">A</text>" in plot and ">B</text>" in plot


def test_a_missing_stale_or_unplayable_preview_is_made_again_and_an_unreadable_video_is_reported(tmp_path):
    base, taught, _ = _pair(tmp_path)
    ok_ids = [iid for iid in IDS[1:-1]]
    main([str(base.path), str(taught.path), "--out", str(tmp_path / "a.html")])
    stale, foreign, broken = (base.preview_of(f"videos/{iid}.mp4") for iid in ok_ids[:3])
    os.utime(stale, (1, 1))  # older than its video
    shutil.copy(base.path / f"videos/{ok_ids[1]}.mp4", foreign)  # the lossless file is no preview
    (base.path / f"videos/{ok_ids[2]}.mp4").write_bytes(b"not a video")
    broken.unlink()
    stats = PreviewStats()
    sections = build_sections([base.path, taught.path], tmp_path / "b.html", stats=stats)
    assert (stats.made, stats.failed) == (2, 1)
    assert preview_problem(foreign) is None and stale.stat().st_mtime > 1
    cell = sections[0].cells[(ok_ids[2], "frozen")]
    assert cell.src is None and "none could be made from videos/" in cell.note and "no preview" in cell.note


def test_ruler_labels_come_from_the_score_details(tmp_path):
    details = {"labels": ["Good", "Poor"], "metrics": ["Instruction Following", "Visual Consistency"]}
    run = _with_videos(write_run(tmp_path / "ruler", "best_of_n", frozen_scores(), bench="ruler",
                                 fields={IDS[2]: {"score_details": details}}))
    page = render(build_sections([run.path], tmp_path / "r.html"), PreviewStats())
    row = _rows(page)[IDS[2]]
    assert 'Instruction Following: <span class="Good">Good</span>' in row
    assert 'Visual Consistency: <span class="Poor">Poor</span>' in row
    assert "no baseline run among these (no paired differences)" in page and "data-diff0=\"\"" in page


def test_runs_of_two_benchmarks_get_a_section_each_and_a_folder_without_runs_exits_2(tmp_path, capsys):
    a = _with_videos(write_run(tmp_path / "a", "frozen", frozen_scores(), bench="synth"))
    b = _with_videos(write_run(tmp_path / "b", "frozen", frozen_scores(), bench="other"))
    page = render(build_sections([a.path, b.path], tmp_path / "r.html"), PreviewStats())
    assert re.findall(r'<h2 id="bench-(\w+)-\d+">', page) == ["other", "synth"]
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "--out", str(tmp_path / "x.html")]) == 2
    assert "no run directory" in capsys.readouterr().err and not (tmp_path / "x.html").exists()


# -- in a real browser -----------------------------------------------------------------------------


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.geteuid() != 0:
            pytest.skip(f"headless Chromium is not installed: {INSTALL} (make test installs it when run as root)")
        pytest.fail("headless Chromium is not installed: make browser (or apt-get install -y chromium) installs it")
    return exe


def _dom(page: Path, query: str, profile: Path) -> str:
    """The page's DOM after its scripts ran, in headless Chromium (virtual time: it waits while media loads)."""
    proc = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required",
         f"--user-data-dir={profile}", "--virtual-time-budget=120000", "--dump-dom", page.as_uri() + query],
        capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _micro_run(tmp_path: Path, method: str) -> Path:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"output_root={tmp_path}", "progress=false", f"method={method}",
                                                         "limit=2", "cpu_threads=1"], return_hydra_config=True)
    choices = dict(cfg.hydra.runtime.choices)
    with open_dict(cfg):
        del cfg["hydra"]
    run_dir = Runner(cfg, choices).execute(NullSink())
    write_run_tables(run_dir.path)
    return run_dir.path


def test_headless_chromium_decodes_and_plays_every_video_of_a_report_of_real_runs(tmp_path):
    _chromium()
    runs = [_micro_run(tmp_path / "runs", m) for m in ("frozen", "vlmteach")]
    out = tmp_path / "report" / "index.html"
    assert main([*map(str, runs), "--out", str(out)]) == 0
    dom = _dom(out, "?check-videos", tmp_path / "profile")
    state, text = re.search(r'<pre id="video-check" data-state="(\w+)">(.*?)</pre>', dom, flags=re.DOTALL).groups()
    results = json.loads(html.unescape(text))
    assert state == "done" and len(results) == 4, results  # 2 instances x 2 methods
    for result in results:
        assert result["src"].startswith("../runs/micro/") and "/previews/" in result["src"]
        assert result["outcome"] == "played" and result["error"] is None, result
        assert result["readyState"] >= 2 and result["currentTime"] > 0  # a frame decoded, the clock moved
        assert result["duration"] == pytest.approx(17 / 8, abs=0.01)
        assert (result["videoWidth"], result["videoHeight"]) == (32, 32)


def test_the_page_sorts_by_the_difference_against_the_baseline_in_the_browser(tmp_path):
    _chromium()
    base, taught, diffs = _pair(tmp_path)
    out = tmp_path / "report.html"
    main([str(base.path), str(taught.path), "--out", str(out)])
    order = re.findall(r'<tr data-id="([^"]+)"', _dom(out, "?sort=diff1,-1", tmp_path / "profile"))
    by_diff = sorted(diffs, key=lambda iid: (-diffs[iid], iid))
    assert order[: len(diffs)] == by_diff and set(order[len(diffs):]) == {IDS[0], IDS[-1]}  # no difference: last


def test_runs_that_do_not_pair_up_get_a_section_per_set_of_seed_and_instances(tmp_path):
    """A folder holding a full run beside a trial of other seeds (as results/runs/micro after the README's commands)."""
    full = _with_videos(write_run(tmp_path / "f0", "frozen", frozen_scores()))
    trial = [_with_videos(write_run(tmp_path / m, m.rstrip("1"), frozen_scores(), ids=IDS[:4], seed=1))
             for m in ("frozen1", "vlmteach1")]
    sections = build_sections([full.path, *(t.path for t in trial)], tmp_path / "r.html")
    assert [(s.title, [c.label for c in s.columns]) for s in sections] == [
        (" (seed 0, 16 instances)", ["frozen"]), (" (seed 1, 4 instances)", ["frozen", "vlmteach"])]
    assert sections[1].cells[(IDS[0], "vlmteach")].diff == 0.0


def test_an_official_aggregation_warning_heads_the_section_once_naming_its_runs(tmp_path):
    details = {"labels": ["Good"], "metrics": ["VC"], "system_prompt": "paraphrase"}  # not RULER-Bench's own prompt
    fields = {iid: {"score_details": details} for iid in IDS}
    runs = [_with_videos(write_run(tmp_path / m, m, frozen_scores(), bench="ruler", fields=fields,
                                   bench_target="benchmarks.ruler.RulerBenchmark"))
            for m in ("frozen", "vlmteach")]
    page = render(build_sections([r.path for r in runs], tmp_path / "r.html"), PreviewStats())
    (warning,) = re.findall(r'<p class="warning">(.*?)</p>', page)
    assert warning.startswith("WARNING (frozen, vlmteach): ") and "not comparable" in warning.lower()
