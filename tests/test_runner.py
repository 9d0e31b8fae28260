"""The runner end to end on the micro world: records, resume, errors, kill -9, shards, stages."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from harness import records as rec
from harness.results.summary import write_run_tables
from harness.config import CONF_DIR
from harness.sinks import NullSink
from harness.types import UserError
from harness.video import preview_problem, read_mp4
from tests.cli import compose_runner

ROOT = CONF_DIR.parent
DOUBLE = "tests.runner_doubles.FailWhileMarked"


def run(tmp_path, *overrides):
    run_dir = compose_runner(tmp_path, *overrides).execute(NullSink())
    write_run_tables(run_dir.path)
    return run_dir


def ok_lines(run_dir):
    return [r for p in run_dir.records_files() for r in rec.read_lines(p) if r["status"] == "ok"]


def test_run_writes_records_videos_and_tables(tmp_path):
    run_dir = run(tmp_path, "limit=3")
    latest = run_dir.latest_records()
    assert len(latest) == 3
    for r in latest.values():
        assert r["status"] == "ok" and 0.0 <= r["score"] <= 1.0
        assert r["config_hash"] and r["versions"]["torch"] and isinstance(r["seed"], int)
        assert read_mp4(run_dir.path / r["video"]).shape == (17, 32, 32, 3)
        assert r["timings"]["total_s"] > 0
        preview = run_dir.preview_of(r["video"])  # beside videos/, never inside it
        assert preview.parts[-len(r["video"].split("/")):][0] == "previews" and preview_problem(preview) is None
        assert read_mp4(preview).shape == (17, 32, 32, 3)
    assert not list(run_dir.videos.rglob("*preview*")) and len(list(run_dir.videos.rglob("*.mp4"))) == 3
    assert run_dir.playable_videos() == sorted(run_dir.preview_of(r["video"]) for r in latest.values())  # what W&B logs
    for name in ("config.yaml", "manifest.json", "summary.json", "table.md", "table.csv"):
        assert (run_dir.path / name).is_file()
    assert json.loads((run_dir.path / "manifest.json").read_text())["instance_ids"] == sorted(latest)


def test_rerun_skips_ok_instances(tmp_path):
    run_dir = run(tmp_path, "limit=2")
    before = (run_dir.records_path()).read_text()
    run(tmp_path, "limit=2")
    assert run_dir.records_path().read_text() == before


def test_same_config_and_seed_give_identical_results(tmp_path):
    a = run(tmp_path / "a", "limit=2").latest_records()
    b = run(tmp_path / "b", "limit=2").latest_records()
    assert {k: v["score"] for k, v in a.items()} == {k: v["score"] for k, v in b.items()}
    c = run(tmp_path / "c", "limit=2", "seed=7").latest_records()
    assert {k: v["seed"] for k, v in a.items()} != {k: v["seed"] for k, v in c.items()}


def test_errors_are_recorded_then_retried_alone(tmp_path):
    marker = tmp_path / "fail"
    marker.touch()
    first = run(tmp_path, "limit=3").latest_records()  # learn the ids
    bad = sorted(first)[1]
    overrides = ["limit=3", f"method._target_={DOUBLE}", f"+method.fail_ids=[{bad}]", f"+method.marker={marker}", "run_name=flaky"]
    run_dir = run(tmp_path, *overrides)
    latest = run_dir.latest_records()
    assert latest[bad]["status"] == "error" and latest[bad]["error"].startswith(f"RuntimeError: injected failure for {bad}")
    assert latest[bad]["trace"] == {"instance_id": bad}  # the failed method's trace so far
    assert latest[bad]["score"] is None and latest[bad]["error_stage"] == "generate"
    assert sum(r["status"] == "ok" for r in latest.values()) == 2
    marker.unlink()
    run(tmp_path, *overrides)
    lines = rec.read_lines(run_dir.records_path())
    assert [r["instance_id"] for r in lines].count(bad) == 2  # only the failed one was redone
    assert len(lines) == 4 and run_dir.latest_records()[bad]["status"] == "ok"


def test_a_method_declared_an_oracle_is_recorded_and_tabled_as_one(tmp_path):
    run_dir = run(tmp_path, "limit=1", "method=pass_at_k", "method.k=2")
    (record,) = run_dir.latest_records().values()
    assert record["oracle"] is True and record["trace"]["chosen"] in (0, 1) and len(record["trace"]["seeds"]) == 2
    assert json.loads((run_dir.path / "summary.json").read_text())["oracle"] is True
    assert "pass_at_k (oracle)" in (run_dir.path / "table.md").read_text()


def test_records_of_another_config_are_refused(tmp_path):
    run(tmp_path, "limit=1", "run_name=fixed")
    with pytest.raises(UserError, match="never mixed"):
        run(tmp_path, "limit=1", "run_name=fixed", "seed=5")


def test_records_of_other_weights_at_the_same_path_are_refused(tmp_path):
    import shutil

    from diffusers import AutoencoderKLWan

    student = tmp_path / "student"
    shutil.copytree(ROOT / "benchmarks/micro/weights/student", student)
    overrides = ["limit=1", f"student.path={student}", "run_name=fixed"]
    run(tmp_path, *overrides)
    run(tmp_path, *overrides)  # unchanged weights resume
    vae = AutoencoderKLWan.from_pretrained(student / "vae")  # re-trained in place: same path, same config
    vae.register_to_config(latents_std=[s * 2 for s in vae.config.latents_std])
    vae.save_pretrained(student / "vae")
    with pytest.raises(UserError, match="other weights at student.path"):
        run(tmp_path, *overrides)


def test_shard_out_of_range_is_refused(tmp_path):
    with pytest.raises(UserError, match="out of range"):
        run(tmp_path, "num_shards=2", "shard=2")


def test_four_shards_merge_to_the_same_table_as_one(tmp_path):
    single = run(tmp_path / "one", "limit=6")
    for shard in range(4):
        sharded = run(tmp_path / "four", "limit=6", "num_shards=4", f"shard={shard}")
    assert len(sharded.records_files()) == 4

    def rows(run_dir):  # wall-clock seconds differ between any two runs; everything else must not
        summary = json.loads((run_dir.path / "summary.json").read_text())
        return [{k: v for k, v in row.items() if k != "mean_seconds"} for row in summary["rows"]]

    assert rows(single) == rows(sharded)
    assert single.latest_records().keys() == sharded.latest_records().keys()
    assert {k: r["score"] for k, r in single.latest_records().items()} == {k: r["score"] for k, r in sharded.latest_records().items()}


def test_generate_then_score_reuses_videos(tmp_path):
    run_dir = run(tmp_path, "limit=2", "stage=generate", "run_name=staged")
    latest = run_dir.latest_records()
    assert {r["status"] for r in latest.values()} == {"generated"}
    mtimes = {p: p.stat().st_mtime_ns for p in run_dir.videos.rglob("*.mp4")}
    run(tmp_path, "limit=2", "stage=score", "run_name=staged")
    assert {r["status"] for r in run_dir.latest_records().values()} == {"ok"}
    assert {p: p.stat().st_mtime_ns for p in run_dir.videos.rglob("*.mp4")} == mtimes


def test_kill_minus_nine_loses_and_duplicates_nothing(tmp_path):
    cmd = [sys.executable, "-m", "harness.eval", f"output_root={tmp_path}", "limit=8", "run_name=killed", "progress=false"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = next(iter(tmp_path.glob("micro/frozen/killed")), None)
    deadline = time.time() + 120
    while time.time() < deadline:
        files = list(tmp_path.glob("micro/frozen/killed/records.jsonl"))
        if files and len(rec.read_lines(files[0])) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    records = tmp_path / "micro/frozen/killed/records.jsonl"
    done_before = {r["instance_id"] for r in rec.read_lines(records)}
    assert 2 <= len(done_before) < 8, "the kill must land mid-run"
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)
    lines = rec.read_lines(records)
    ids = [r["instance_id"] for r in lines]
    assert len(ids) == len(set(ids)) == 8  # nothing lost, nothing duplicated
    assert all(r["status"] == "ok" for r in lines)
    assert not list((records.parent / "videos").rglob(".tmp-*"))


def test_a_shard_that_never_started_makes_the_run_incomplete(tmp_path):
    for shard in (0, 2):
        run_dir = run(tmp_path, "limit=3", "num_shards=3", f"shard={shard}")
    completeness = run_dir.completeness()
    assert completeness.missing_shards == [1] and not completeness.complete
    summary = json.loads((run_dir.path / "summary.json").read_text())
    assert "1 shard(s) never started" in summary["flag"]


def test_append_after_a_torn_line_keeps_the_file_readable(tmp_path):
    path = tmp_path / "records.jsonl"
    first = rec.Record(instance_id="a", bench="b", task="t", category="c", split="s", method="m", seed=1, status="ok", score=1.0)
    rec.append(path, first)
    with open(path, "a") as f:
        f.write('{"instance_id": "b", "sta')  # a writer killed mid-line
    rec.append(path, rec.Record(**{**first.__dict__, "instance_id": "c"}))
    assert [r["instance_id"] for r in rec.read_lines(path)] == ["a", "c"]


def test_a_model_that_cannot_load_fails_the_run_instead_of_every_instance(tmp_path):
    with pytest.raises(UserError, match="student.path"):
        run(tmp_path, "limit=2", "student.path=/nonexistent/student")
    with pytest.raises(Exception, match="no_such_setting"):  # any load failure, not only a UserError
        run(tmp_path, "limit=2", "+student.no_such_setting=1", "run_name=badkw")
    assert not list(tmp_path.rglob("records*.jsonl"))
