"""The W&B sink, run offline into tmp_path and read back from the offline run's own files."""

import json
import time
from pathlib import Path

import numpy as np
import pytest
from agg_fixtures import frozen_scores, loop_fields, write_run
from omegaconf import OmegaConf

from harness.results.summary import write_run_tables
from harness.rundir import RunDir
from harness.sinks import NullSink, WandbSink, make_sink
from harness.video import write_mp4
from harness.vlmteach.trace import VlmTeachTrace

CONF = Path(__file__).resolve().parents[1] / "conf" / "logger"


def _spy_exit_code(sink: WandbSink) -> list:
    """Record the exit code the sink closes its W&B run with (then really close it)."""
    codes, run = [], sink._run
    real_finish = run.finish

    def finish(exit_code=None, **kwargs):
        codes.append(exit_code)
        return real_finish(exit_code=exit_code, **kwargs)

    run.finish = finish
    return codes


def _offline_run(run_dir: Path) -> Path:
    (found,) = list((run_dir / "wandb").glob("offline-run-*"))
    return found


def _table(offline: Path, key: str) -> dict:
    (path,) = list((offline / "files" / "media" / "table").glob(f"{key}_*.table.json"))
    return json.loads(path.read_text())


def test_wandb_sink_logs_config_instances_summary_and_videos(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_DIR", raising=False)
    run = write_run(tmp_path / "run", "vlmteach", frozen_scores(), errors={"synth/a1/0"}, steps=16)
    clip = np.zeros((4, 16, 16, 3), dtype=np.uint8)
    videos = []
    for name in ("a", "b", "c"):
        write_mp4(run.path / "videos" / f"{name}.mp4", clip, fps=8)
        videos.append(run.path / "videos" / f"{name}.mp4")
    sink = make_sink(OmegaConf.load(CONF / "wandb.yaml"))
    assert isinstance(sink, WandbSink) and sink.mode == "offline"
    sink.max_videos = 2

    sink.start(run.path, {"seed": 0, "method": {"label": "vlmteach"}}, "my-run")
    latest = RunDir(run.path).latest_records()
    for record in list(latest.values())[:5]:  # part of the run arrives live, the rest is on disk
        sink.log_record(record)
    summary, _, table_df = write_run_tables(run.path)
    codes = _spy_exit_code(sink)
    sink.finish(run.path, summary, table_df, videos)
    assert codes == [0]

    offline = _offline_run(run.path)
    instances = _table(offline, "instances")
    rows = [dict(zip(instances["columns"], row, strict=True)) for row in instances["data"]]
    assert len(rows) == 16 and {r["instance_id"] for r in rows} == set(latest)
    errored = next(r for r in rows if r["instance_id"] == "synth/a1/0")
    assert errored["status"] == "error" and errored["score"] is None and errored["error"] == "boom"
    ok = next(r for r in rows if r["instance_id"] == "synth/b1/2")
    assert ok["score"] == pytest.approx(0.82) and ok["steps"] == 16 and ok["total_s"] == 2.0

    table = _table(offline, "summary_table")
    srows = [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]
    overall = next(r for r in srows if r["level"] == "overall")
    expected = next(r for r in summary["rows"] if r["level"] == "overall")
    assert overall["mean"] == pytest.approx(expected["mean"]) and overall["n"] == 15 and overall["n_error"] == 1
    assert len(srows) == len(summary["rows"])

    logged_videos = list((offline / "files" / "media" / "videos").rglob("*.mp4"))
    assert len(logged_videos) == 2  # max_videos
    # the resolved config and its hash reach the run's protocol-buffer log (the wandb-core service
    # flushes it shortly after finish returns)
    deadline = time.monotonic() + 30
    while b"hash-vlmteach" not in (raw := next(offline.glob("*.wandb")).read_bytes()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert b"hash-vlmteach" in raw and b"my-run" in raw


def test_wandb_sink_logs_a_vlmteach_runs_teacher_audit(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_DIR", raising=False)
    frozen = frozen_scores()
    scores = {iid: s + 0.1 for iid, s in frozen.items()}
    run = write_run(tmp_path / "run", "vlmteach", scores, fields=loop_fields(frozen, scores), trace_type=VlmTeachTrace)
    sink = make_sink(OmegaConf.load(CONF / "wandb.yaml"))
    sink.start(run.path, {"seed": 0}, "audit")
    summary, _, table_df = write_run_tables(run.path)
    sink.finish(run.path, summary, table_df, [])
    table = _table(_offline_run(run.path), "teacher_verdicts")
    rows = [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]
    assert len(rows) == len(summary["audits"]["teacher_verdicts"])
    overall = next(r for r in rows if r["group"] == "all")
    assert (overall["n"], overall["n_accepted"], overall["loss_end"]) == (16, 8, 0.0)
    assert overall["loss_start"] is None  # no frozen run beside it: an empty cell, not NaN or 0


def test_failure_inside_finish_still_closes_the_run(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_DIR", raising=False)
    run = write_run(tmp_path / "run", "frozen", frozen_scores())
    sink = WandbSink(project="p")
    sink.start(run.path, {"seed": 0}, "r")
    summary, _, table_df = write_run_tables(run.path)
    codes = _spy_exit_code(sink)
    with pytest.raises(FileNotFoundError):
        sink.finish(run.path, summary, table_df, [run.path / "videos" / "missing.mp4"])
    assert codes == [1]  # closed in a finally, marked failed


def test_abort_closes_the_run_and_is_idempotent(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_DIR", raising=False)
    run = write_run(tmp_path / "run", "frozen", frozen_scores())
    sink = WandbSink(project="p")
    sink.start(run.path, {"seed": 0}, "r")
    codes = _spy_exit_code(sink)
    sink.abort()
    sink.abort()  # nothing left to close
    assert codes == [1]
    with pytest.raises(RuntimeError, match="before start"):
        sink.finish(run.path, {}, None, [])


def test_null_sink_and_configs():
    assert isinstance(make_sink(None), NullSink)
    assert isinstance(make_sink(OmegaConf.load(CONF / "none.yaml")), NullSink)
    with pytest.raises(ValueError, match="offline, online or disabled"):
        WandbSink(project="p", mode="sometimes")
