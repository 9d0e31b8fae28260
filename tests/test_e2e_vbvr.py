"""VBVR-Bench through ``python -m harness.eval``, as a user runs it: the released data layout (the synthetic
builder), the micro student and teacher at the benchmark's overridden size, and the official VBVR-EvalKit
scorers (installed by the project's set-up from ``../shared/wheels`` or the pinned git commit)."""

from __future__ import annotations

import json

import pytest

from benchmarks.make_tiny import VBVR_TASKS, write_tiny
from benchmarks.vbvr import VbvrBenchmark
from harness.results.runs import load_run
from harness.rundir import RunDir
from harness.types import Trace, UserError
from tests.cli import VBVR_SIZE, harness_eval

# One multirun of every method is the slowest fixture of the suite (about 90 s alone, more beside other tests).
pytestmark = pytest.mark.timeout(900)

METHODS = ("frozen", "pass_at_k", "vlmteach")
TASKS = VBVR_TASKS


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    data = write_tiny("vbvr", tmp_path_factory.mktemp("vbvr") / "VBVR-Bench")
    out = tmp_path_factory.mktemp("runs")
    proc = harness_eval("--multirun", f"method={','.join(METHODS)}", "bench=vbvr", f"bench.data_dir={data}", *VBVR_SIZE,
                        f"output_root={out}")
    return proc.stdout, {m: RunDir(next((out / "vbvr" / m).iterdir())) for m in METHODS}, data


def test_every_method_is_scored_by_the_official_scorers(comparison):
    _, runs, _ = comparison
    for method, run in runs.items():
        records = run.latest_records()
        assert len(records) == 2 * len(TASKS) and {r["status"] for r in records.values()} == {"ok"}, method
        details = [r["score_details"] for r in records.values()]
        assert {d["mode"] for d in details} == {"task_specific"}
        assert all(set(r["scores"]) == {"task_specific"} for r in records.values())
        assert json.loads((run.path / "summary.json").read_text())["official"]["n_scored"] == 2 * len(TASKS)


def test_the_sweep_prints_table_one_with_the_papers_rows_and_paired_differences(comparison):
    output, runs, _ = comparison
    assert "| method | Overall | Abstraction | Knowledge | Perception | Δ vs frozen [95% CI] |" in output
    assert "| paper: VBVR-Wan2.2-5B-Distilled + Ours | 0.781 |" in output
    assert "| pass_at_k (oracle) |" in output and "### vbvr: Δ vs frozen per split and category" in output
    for method, run in runs.items():
        mean = json.loads((run.path / "summary.json").read_text())["rows"][0]["mean"]
        label = "pass_at_k (oracle)" if method == "pass_at_k" else method
        assert f"| {label} | {mean:.3f} [" in output


def test_each_run_names_its_trace_type_its_traces_read_back_as_it_and_only_vlmteach_is_audited(comparison):
    _, runs, _ = comparison
    traces = {"frozen": None, "pass_at_k": "baselines.traces.ScorerSelection",
              "vlmteach": "harness.vlmteach.trace.VlmTeachTrace"}
    for method, run in runs.items():
        manifest = json.loads((run.path / "manifest.json").read_text())
        assert manifest["trace"] == traces[method], method
        read = {type(r["trace"]).import_path() if isinstance(r["trace"], Trace) else None
                for r in load_run(run.path).records}
        assert read == {traces[method]}, method
        audited = method == "vlmteach"
        assert ("the teacher's verdicts in" in (run.path / "table.md").read_text()) == audited, method


def test_scoring_in_worker_processes_gives_the_same_records_in_the_same_run(comparison, tmp_path):
    """``bench.score_workers=2``: videos scored in two processes while generation goes on. Same config hash (the
    run directory's name), same scores and score details, exactly."""
    _, runs, data = comparison
    harness_eval("method=frozen", "bench=vbvr", f"bench.data_dir={data}", *VBVR_SIZE, "bench.score_workers=2",
                 f"output_root={tmp_path}")
    run = RunDir(next((tmp_path / "vbvr" / "frozen").iterdir()))
    assert run.path.name == runs["frozen"].path.name
    sequential, parallel = runs["frozen"].latest_records(), run.latest_records()
    assert sorted(parallel) == sorted(sequential) and {r["status"] for r in parallel.values()} == {"ok"}
    for iid, record in parallel.items():
        assert record["video_sha256"] == sequential[iid]["video_sha256"], iid
        assert (record["score"], record["score_details"]) == (sequential[iid]["score"], sequential[iid]["score_details"]), iid


def test_score_workers_must_be_positive(comparison):
    _, _, data = comparison
    with pytest.raises(UserError, match=r"bench.score_workers=0: give the number of scoring processes"):
        VbvrBenchmark(data_dir=str(data), score_workers=0)
