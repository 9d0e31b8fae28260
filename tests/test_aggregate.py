"""Records in, tables out (harness.results) on a synthetic benchmark with known numbers."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from agg_fixtures import IDS, SYNTH_TARGET, TASKS, SynthBenchmark, frozen_scores, make_record, task_of, write_run

from harness import records as rec
from harness.results.compare import compare
from harness.results.reference import load_reference, match_key
from harness.results.summary import write_run_tables
from harness.rundir import RunDir
from harness.types import UserError

REPO = Path(__file__).resolve().parents[1]


def _row(summary, level, group):
    return next(r for r in summary["rows"] if r["level"] == level and r["group"] == group)


def test_means_per_level_and_errors_excluded(tmp_path):
    scores = frozen_scores()
    err = "synth/a1/0"
    write_run(tmp_path, "frozen", scores, errors={err}, unscored={"synth/b1/3"})
    summary, markdown, frame = write_run_tables(tmp_path)
    ok = {i: s for i, s in scores.items() if i not in (err, "synth/b1/3")}

    overall = _row(summary, "overall", "all")
    assert overall["mean"] == pytest.approx(np.mean(list(ok.values())))
    assert overall["mean"] != pytest.approx(np.mean(list(ok.values()) + [0.0, 0.0]))  # not scored as zeros
    assert (overall["n"], overall["n_error"], overall["n_unscored"], overall["n_expected"]) == (14, 1, 1, 16)
    assert overall["ci_low"] <= overall["mean"] <= overall["ci_high"]
    a1 = _row(summary, "task", "a1")
    assert a1["mean"] == pytest.approx(np.mean([0.21, 0.22, 0.23])) and (a1["n"], a1["n_error"]) == (3, 1)
    assert a1["category"] == "A"
    ood = _row(summary, "split", "ood")
    assert ood["mean"] == pytest.approx(np.mean([ok[i] for i in ok if TASKS[task_of(i)][1] == "ood"]))
    assert _row(summary, "split/category", "ood/B")["n"] == 3
    # every group has its n expected: all planned instances have a record
    assert _row(summary, "category", "A")["n_expected"] == 12
    assert summary["complete"] is False and summary["flag"] == "INCOMPLETE: 1 error, 1 unscored"
    # the three files are written and agree
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert (tmp_path / "table.md").read_text() == markdown
    csv = pd.read_csv(tmp_path / "table.csv")
    assert csv.loc[(csv.level == "overall"), "mean"].item() == pytest.approx(overall["mean"])
    assert len(csv) == len(frame) == len(summary["rows"])


def test_cost_columns(tmp_path):
    write_run(tmp_path, "vlmteach", frozen_scores(), seconds=69.0, steps=16)
    summary, markdown, _ = write_run_tables(tmp_path)
    overall = _row(summary, "overall", "all")
    assert overall["mean_seconds"] == pytest.approx(69.0) and overall["mean_steps"] == pytest.approx(16.0)
    assert "| 69.0 | 16.0 |" in markdown


def test_incomplete_run_is_flagged(tmp_path):
    missing = {"synth/a2/0", "synth/a2/1", "synth/b1/2"}
    write_run(tmp_path, "frozen", frozen_scores(), missing=missing, errors={"synth/a3/0"})
    summary, markdown, _ = write_run_tables(tmp_path)
    assert "**INCOMPLETE: 3 missing, 1 error**" in markdown
    assert summary["completeness"]["missing"] == sorted(missing) and summary["complete"] is False
    overall = _row(summary, "overall", "all")
    assert (overall["n"], overall["n_expected"]) == (12, 16)
    # a missing instance's group is unknown without the manifest's instance_groups: not guessed
    assert _row(summary, "task", "a2")["n_expected"] is None


def test_unplanned_records_are_flagged_and_left_out_of_the_means(tmp_path):
    """A re-used directory holding records of a former, larger set: only the planned instances count."""
    scores = frozen_scores()
    run = write_run(tmp_path, "frozen", scores)
    stale = "synth/a1/99"
    rec.append(run.records_path(0, 1), make_record(stale, "frozen", rec.STATUS_OK, 0.0, 2.0, 0, "hash-frozen", "synth"))
    summary, markdown, _ = write_run_tables(tmp_path)
    overall = _row(summary, "overall", "all")
    assert overall["mean"] == pytest.approx(np.mean(list(scores.values())))
    assert (overall["n"], overall["n_expected"]) == (16, 16)
    assert _row(summary, "task", "a1")["n"] == 4
    assert "**INCOMPLETE: 1 unplanned (not in the means)**" in markdown and summary["complete"] is False


def test_instance_groups_in_manifest_give_per_group_expected(tmp_path):
    run = write_run(tmp_path, "frozen", frozen_scores(), missing={"synth/a2/0"})
    manifest = json.loads(run.manifest_path().read_text())
    manifest["instance_groups"] = {i: {"task": task_of(i), "category": TASKS[task_of(i)][0],
                                       "split": TASKS[task_of(i)][1]} for i in IDS}
    run.manifest_path().write_text(json.dumps(manifest))
    summary, _, _ = write_run_tables(tmp_path)
    a2 = _row(summary, "task", "a2")
    assert (a2["n"], a2["n_expected"]) == (3, 4)


def test_complete_run(tmp_path):
    write_run(tmp_path, "frozen", frozen_scores())
    summary, markdown, _ = write_run_tables(tmp_path)
    assert summary["complete"] is True and "complete (16 instances)" in markdown
    assert "INCOMPLETE" not in markdown


def test_one_task_category_still_appears_with_an_interval(tmp_path):
    write_run(tmp_path, "frozen", frozen_scores())
    summary, _, _ = write_run_tables(tmp_path)
    b = _row(summary, "category", "B")  # B holds the single task b1
    assert b["mean"] == pytest.approx(0.815) and b["n"] == 4
    assert b["ci_low"] < b["mean"] < b["ci_high"]


def test_merge_one_vs_four_shards_gives_identical_summary(tmp_path):
    scores = frozen_scores()
    one = write_run(tmp_path / "one", "frozen", scores, errors={"synth/a3/1"})
    # the sharded layout also holds an earlier failed attempt that a retry superseded
    rec.append(RunDir(tmp_path / "four").records_path(0, 4), make_record("synth/a1/2", "frozen", rec.STATUS_ERROR))
    four = write_run(tmp_path / "four", "frozen", scores, errors={"synth/a3/1"}, num_shards=4)
    assert len(four.records_files()) == 4 and len(one.records_files()) == 1
    write_run_tables(one.path)
    write_run_tables(four.path)

    def without_path(run):
        data = json.loads((run.path / "summary.json").read_text())
        data.pop("run_dir")
        return json.dumps(data, sort_keys=True)

    assert without_path(one) == without_path(four)
    assert (one.path / "table.csv").read_bytes() == (four.path / "table.csv").read_bytes()
    # and the same records give the same intervals again (seeded bootstrap)
    before = (one.path / "summary.json").read_bytes()
    write_run_tables(one.path)
    assert (one.path / "summary.json").read_bytes() == before


def test_paired_difference_against_baseline(tmp_path):
    base = frozen_scores()
    gain = {"a1": 0.3, "a2": 0.1, "a3": 0.2, "b1": -0.1}
    method = {i: s + gain[task_of(i)] for i, s in base.items()}
    write_run(tmp_path / "frozen", "frozen", base, errors={"synth/a1/0"})
    write_run(tmp_path / "vlm", "vlmteach", method, errors={"synth/b1/0"})
    markdown, frame = compare([tmp_path / "vlm", tmp_path / "frozen"])

    pairs = [i for i in IDS if i not in ("synth/a1/0", "synth/b1/0")]
    expected = np.mean([method[i] - base[i] for i in pairs])
    row = frame[(frame.method == "vlmteach") & (frame.level == "overall")].iloc[0]
    assert row.diff_mean == pytest.approx(expected) and row.n_pairs == 14
    assert row.diff_ci_low <= row.diff_mean <= row.diff_ci_high
    assert 0 < row.p_value < 0.05
    b1 = frame[(frame.method == "vlmteach") & (frame.level == "task") & (frame.group == "b1")].iloc[0]
    assert b1.diff_mean == pytest.approx(-0.1) and b1.n_pairs == 3
    assert "Δ vs frozen [95% CI]" in markdown and f"{expected:+.3f}" in markdown
    assert markdown.index("| frozen |") < markdown.index("| vlmteach |")  # baseline first


def test_paired_difference_per_split_and_category_is_tabled(tmp_path):
    base = frozen_scores()
    gain = {"a1": 0.3, "a2": 0.1, "a3": 0.2, "b1": -0.1}  # split id: a1, a2; ood: a3, b1; category B: b1
    write_run(tmp_path / "frozen", "frozen", base, errors={"synth/a1/0"})
    write_run(tmp_path / "vlm", "vlmteach", {i: s + gain[task_of(i)] for i, s in base.items()}, errors={"synth/b1/0"})
    markdown, _ = compare([tmp_path / "vlm", tmp_path / "frozen"])
    section = markdown.split("### synth: Δ vs frozen per split and category")[1].split("###")[0]
    rows = {line.split(" | ")[0].strip("| "): line for line in section.splitlines() if line.startswith("| ")}
    assert list(rows) == ["group", "id", "ood", "A", "B"]  # splits, then categories
    expected = {"id": ((0.3 * 3 + 0.1 * 4) / 7, 7), "ood": ((0.2 * 4 - 0.1 * 3) / 7, 7),
                "A": ((0.3 * 3 + 0.1 * 4 + 0.2 * 4) / 11, 11), "B": (-0.1, 3)}
    for group, (diff, n) in expected.items():
        assert f"| {group} | {diff:+.3f} [" in rows[group] and rows[group].endswith(f"n={n} |")
    assert "| frozen" not in section  # the baseline has no column against itself


def test_missing_baseline_gives_note_and_no_diff(tmp_path):
    write_run(tmp_path / "vlm", "vlmteach", frozen_scores())
    markdown, frame = compare([tmp_path / "vlm"], baseline="frozen")
    assert "baseline 'frozen' not among these runs: no paired difference column" in markdown
    assert "Δ vs" not in markdown and "diff_mean" not in frame.columns


def test_pass_at_k_is_marked_oracle_everywhere(tmp_path):
    write_run(tmp_path / "frozen", "frozen", frozen_scores())
    write_run(tmp_path / "pk", "pass_at_k", {i: s + 0.05 for i, s in frozen_scores().items()}, oracle=True)
    summary, run_md, run_frame = write_run_tables(tmp_path / "pk")
    assert summary["oracle"] is True and "pass_at_k (oracle)" in run_md
    assert set(run_frame.method) == {"pass_at_k (oracle)"}
    markdown, frame = compare([tmp_path / "frozen", tmp_path / "pk"])
    assert "| pass_at_k (oracle) |" in markdown
    assert "pass_at_k (oracle)" in set(frame.method) and "pass_at_k" not in set(frame.method)


def test_official_aggregation_is_called_and_shown(tmp_path, monkeypatch):
    seen = {}

    def official_aggregate(records, *, expected_ids=None):
        seen["statuses"] = sorted(r["status"] for r in records)
        seen["expected"] = expected_ids
        return {"overall": 0.4321, "by_split": {"id": 0.5}, "notes": ["task-specific mode"]}

    monkeypatch.setattr(SynthBenchmark, "official_aggregate", staticmethod(official_aggregate))
    write_run(tmp_path, "frozen", frozen_scores(), errors={"synth/a1/1"}, missing={"synth/a2/3"},
              bench_target=SYNTH_TARGET)
    summary, markdown, _ = write_run_tables(tmp_path)
    assert seen["statuses"].count("error") == 1 and len(seen["statuses"]) == 15  # errors reach it too
    assert seen["expected"] == IDS  # the manifest, so it can count the missing instance
    assert summary["official"]["overall"] == 0.4321
    assert f"### Official aggregation ({SYNTH_TARGET}.official_aggregate)" in markdown
    assert "- overall: 0.432" in markdown and "- by_split.id: 0.500" in markdown
    assert "- note: task-specific mode" in markdown
    compared, _ = compare([tmp_path])
    assert "| method | overall |" in compared and "| frozen | 0.432 |" in compared


def test_failing_official_aggregation_is_reported_not_hidden(tmp_path, monkeypatch):
    monkeypatch.setattr(SynthBenchmark, "official_aggregate", staticmethod(lambda records, *, expected_ids: 1 / 0))
    write_run(tmp_path, "frozen", frozen_scores(), bench_target=SYNTH_TARGET)
    summary, markdown, _ = write_run_tables(tmp_path)
    assert "ZeroDivisionError" in summary["official"]["error"] and "ZeroDivisionError" in markdown


def test_a_run_whose_config_names_no_benchmark_class_has_no_official_section(tmp_path):
    write_run(tmp_path, "frozen", frozen_scores())
    summary, markdown, _ = write_run_tables(tmp_path)
    assert summary["official"] is None and "Official aggregation" not in markdown


def test_a_benchmark_class_that_cannot_be_imported_is_reported_and_the_run_still_compared(tmp_path):
    write_run(tmp_path, "frozen", frozen_scores(), bench_target="benchmarks.gone.GoneBenchmark")
    summary, markdown, _ = write_run_tables(tmp_path)
    assert "cannot import its benchmark benchmarks.gone.GoneBenchmark" in summary["official"]["error"]
    assert "cannot import" in markdown
    compared, frame = compare([tmp_path])
    assert "| frozen |" in compared and set(frame.source) == {"run"}  # no paper table declared


def test_the_benchmarks_declare_their_results_and_import_without_torch():
    """Tables ask the class (never built) for its paper table and official aggregation, without torch; the methods'
    trace types and audits they read, and the report, import without it too."""
    code = ("import sys; from benchmarks.micro import MicroBenchmark; from benchmarks.ruler import RulerBenchmark; "
            "from benchmarks.vbvr import VbvrBenchmark; import harness.vlmteach.teacher_audit; "
            "import baselines.traces, harness.vlmteach.trace, harness.report; "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "print(MicroBenchmark.reference_table, RulerBenchmark.reference_table, VbvrBenchmark.reference_table, "
            "MicroBenchmark.official_aggregate([], expected_ids=None), "
            "sorted(RulerBenchmark.official_aggregate([], expected_ids=[]))[:2], "
            "VbvrBenchmark.official_aggregate([], expected_ids=[])['n_expected'])")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split(maxsplit=4)[:4] == ["None", "ruler_table4", "vbvr_table1", "None"]
    assert proc.stdout.rstrip().endswith(" 0")


def test_vbvr_run_gets_paper_rows_by_default(tmp_path):
    ids_split = {"a1": "In-Domain_50", "a2": "In-Domain_50", "a3": "Out-of-Domain_50", "b1": "Out-of-Domain_50"}
    run = write_run(tmp_path / "frozen", "frozen", frozen_scores(), bench="vbvr",
                    bench_target="benchmarks.vbvr.VbvrBenchmark")
    for path in run.records_files():  # VBVR-style split names must still meet the paper's ID / OOD
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        path.write_text("".join(json.dumps({**r, "split": ids_split[r["task"]]}) + "\n" for r in rows))
    markdown, frame = compare([tmp_path / "frozen"])
    line = next(ln for ln in markdown.splitlines() if ln.startswith("| paper: VBVR-Wan2.2-5B-Distilled + Ours |"))
    assert line.split(" | ")[1:4] == ["0.781", "0.803", "0.759"]  # Overall, ID, OOD columns
    paper = frame[frame.source == "paper"]
    assert set(paper.run) == {"vbvr_table1"}
    assert "paper: VBVR-Wan2.2-5B-Distilled + Pass@5 (oracle)" in set(paper.method)


def test_match_key_spellings():
    assert match_key("split", "In-Domain_50") == match_key("split", "id") == "id"
    assert match_key("split", "Out_of_Domain") == "ood"
    assert match_key("category", "vision rule") == match_key("category", "Vision_Rule")
    assert match_key("split/category", "In-Domain_50/Abstraction") == match_key("split/category", "id/abstraction")


def test_reference_tables_are_consistent_transcriptions():
    t1 = load_reference("vbvr_table1").pivot_table(index="model", columns="key", values="value")
    assert len(t1) == 17 and t1.shape[1] == 13
    # the paper: Overall = mean(ID Avg, OOD Avg) in every row
    assert np.allclose(t1["all"], (t1["id"] + t1["ood"]) / 2, atol=0.0015)
    assert t1.loc["VBVR-Wan2.2-5B-Distilled + Ours", "all"] == 0.781
    t2 = load_reference("ruler_table2")
    tasks = t2[t2.level == "task"].pivot_table(index="model", columns="key", values="value")
    avg = t2[t2.level == "overall"].set_index("model")["value"]
    assert tasks.shape == (14, 30)
    gap = tasks.mean(axis=1) - avg[tasks.index]  # the paper's task mean is 0.9-1.7 above its "Avg" (results/reference/README.md)
    assert gap.between(0.85, 1.75).all()
    assert avg["Wan2.2-5B-Distilled + Ours"] == 68.2 and avg["Wan2.2-5B-Distilled"] == 46.4
    t3 = load_reference("vbvr_table3").pivot_table(index="model", columns="key", values="value")
    assert len(t3) == 17 and np.allclose(t3["all"], (t3["id"] + t3["ood"]) / 2, atol=0.0015)
    t4 = load_reference("ruler_table4")
    assert t4.groupby("model").size().eq(6).all() and t4.model.nunique() == 7
    with pytest.raises(UserError, match="available: ruler_table2"):
        load_reference("nope")
