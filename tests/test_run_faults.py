"""Issue 30: the run directory under faults, concurrency and bad values — nothing lost, nothing silent."""

import json
import os
import stat
import subprocess
import sys

import pytest

from harness import records as rec
from harness.status import main as status_main
from harness.table import main as table_main
from harness.types import UserError
from harness.sinks import NullSink
from tests.test_runner import ROOT, compose_runner, run


def break_middle_line(path):
    lines = path.read_text().splitlines(keepends=True)
    lines[1] = '{"instance_id": "micro/x", "sta\n'  # a broken line that ends in a newline, records after it
    path.write_text("".join(lines))


def test_a_broken_records_line_is_named_by_every_reader(tmp_path, capsys):
    run_dir = run(tmp_path, "limit=3")
    break_middle_line(run_dir.records_path())
    where = r"records\.jsonl, line 2 \(not JSON"
    with pytest.raises(UserError, match=where):  # resume
        run(tmp_path, "limit=3")
    assert table_main([str(run_dir.path)]) == 2
    err = capsys.readouterr().err
    assert "records.jsonl, line 2 (not JSON" in err and "delete that line" in err
    assert status_main([str(run_dir.path)]) == 1
    out = capsys.readouterr().out
    assert "records.jsonl, line 2 (not JSON" in out and "delete that line" in out


def test_a_non_finite_score_is_a_score_error_naming_the_instance_then_rescored(tmp_path):
    marker = tmp_path / "nan"
    marker.touch()
    ids = sorted(run(tmp_path, "limit=2", "run_name=ids").latest_records())
    overrides = ["limit=2", "bench._target_=tests.runner_doubles.NanWhileMarked", f"+bench.nan_ids=[{ids[0]}]",
                 f"+bench.marker={marker}", "run_name=nan"]
    run_dir = run(tmp_path, *overrides)  # tables are written too: a NaN never reaches them
    bad = run_dir.latest_records()[ids[0]]
    assert bad["status"] == "error" and bad["error_stage"] == "score" and bad["score"] is None
    assert ids[0] in bad["error"] and "non-finite" in bad["error"]
    assert json.loads((run_dir.path / "summary.json").read_text())["flag"] == "INCOMPLETE: 1 error"
    marker.unlink()
    video = run_dir.path / bad["video"]
    mtime = video.stat().st_mtime_ns
    assert run(tmp_path, *overrides).latest_records()[ids[0]]["status"] == "ok"
    assert video.stat().st_mtime_ns == mtime  # re-scored, not re-generated


def video_of(run_dir, iid):
    return run_dir.path / run_dir.latest_records()[iid]["video"]


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_a_lost_or_changed_video_is_flagged_by_status_and_regenerated_by_resume(tmp_path, capsys, damage):
    run_dir = run(tmp_path, "limit=2")
    iid = sorted(run_dir.latest_records())[0]
    record = run_dir.latest_records()[iid]
    assert record["video_bytes"] == video_of(run_dir, iid).stat().st_size and len(record["video_sha256"]) == 64
    video = video_of(run_dir, iid)
    if damage == "delete":
        video.unlink()
    else:
        video.write_bytes(video.read_bytes()[:100])
    assert status_main([str(run_dir.path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("INCOMPLETE") and f"bad_videos (1): {iid}" in out and "generates these videos again" in out
    run(tmp_path, "limit=2")
    again = run_dir.latest_records()[iid]
    assert again["status"] == "ok" and again["video_sha256"] == record["video_sha256"]  # the same seed, the same video
    assert run_dir.video_problem(again) is None and status_main([str(run_dir.path)]) == 0


def test_scoring_a_lost_video_says_how_to_generate_it_again(tmp_path):
    run_dir = run(tmp_path, "limit=1", "stage=generate", "run_name=staged")
    iid = next(iter(run_dir.latest_records()))
    video_of(run_dir, iid).unlink()
    run(tmp_path, "limit=1", "stage=score", "run_name=staged")
    error = run_dir.latest_records()[iid]["error"]
    assert "is missing" in error and "stage=all" in error


def test_a_video_unreadable_when_scored_is_generated_again_on_the_next_run(tmp_path):
    run_dir = run(tmp_path, "limit=1", "stage=generate", "run_name=staged")
    iid, record = next(iter(run_dir.latest_records().items()))
    video = video_of(run_dir, iid)
    video.write_bytes(b"not an mp4")  # as if written corrupt: the record's size and digest say it is this file
    from harness.rundir import file_sha256

    rec.append(run_dir.records_path(), rec.Record(**{**record, "video_bytes": 10, "video_sha256": file_sha256(video)}))
    run(tmp_path, "limit=1", "run_name=staged")
    failed = run_dir.latest_records()[iid]
    assert failed["error_stage"] == "score" and "generates it again" in failed["error"] and failed["video"] is None
    run(tmp_path, "limit=1", "run_name=staged")
    assert run_dir.latest_records()[iid]["status"] == "ok"


def test_tables_of_an_old_run_with_a_nan_score_name_the_instance(tmp_path, capsys):
    run_dir = run(tmp_path, "limit=2")
    iid, record = next(iter(run_dir.latest_records().items()))
    rec.append(run_dir.records_path(), rec.Record(**{**record, "score": float("nan")}))  # as the runner once wrote it
    assert table_main([str(run_dir.path)]) == 2
    assert f"non-finite score: {iid}" in capsys.readouterr().err
    run(tmp_path, "limit=2")  # resume scores it again
    assert run_dir.latest_records()[iid]["score"] == record["score"]


def test_shards_planned_with_different_limits_are_refused(tmp_path):
    # By default each limit is a run of its own (…-first9, …-first12): neither looks complete with one shard.
    nine = run(tmp_path / "own", "limit=9", "num_shards=3", "shard=0")
    twelve = run(tmp_path / "own", "limit=12", "num_shards=3", "shard=1")
    assert nine.path != twelve.path and not nine.completeness().complete and not twelve.completeness().complete
    # Named alike, they are one run, and the second plan is refused.
    run(tmp_path, "limit=9", "num_shards=3", "shard=0", "run_name=r")
    with pytest.raises(UserError, match=r"shard 0 was planned from 9 instances \(limit=9.*this shard from 12 \(limit=12"):
        run(tmp_path, "limit=12", "num_shards=3", "shard=1", "run_name=r")
    run(tmp_path, "limit=9", "num_shards=3", "shard=0", "run_name=r")  # the same plan resumes


HOLD_LOCK = """
import sys
from pathlib import Path
from harness.shard_lock import shard_lock
with shard_lock(Path(sys.argv[1]), 0, 1):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_a_second_process_on_the_same_shard_is_refused_and_a_dead_holders_lock_is_taken_over(tmp_path):
    run_dir = run(tmp_path, "limit=1", "run_name=r")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run_dir.path)], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "held\n"
    with pytest.raises(UserError, match="another process is running"):
        run(tmp_path, "limit=1", "run_name=r")
    holder.kill()  # SIGKILL: no clean-up; the lock file stays behind
    holder.wait()
    assert (run_dir.path / "records.lock").exists()
    assert len(run(tmp_path, "limit=1", "run_name=r").latest_records()) == 1


def test_outputs_follow_the_umask(tmp_path):
    old = os.umask(0o002)
    try:
        run_dir = run(tmp_path, "limit=1")
    finally:
        os.umask(old)
    video = video_of(run_dir, next(iter(run_dir.latest_records())))
    for path in (video, run_dir.records_path(), run_dir.manifest_path()):
        assert stat.S_IMODE(path.stat().st_mode) == 0o664, path


def test_an_unwritable_output_root_is_said_plainly(tmp_path):
    with pytest.raises(UserError, match="cannot write the run directory /proc/x/.*set output_root="):
        run(tmp_path, "limit=1", "output_root=/proc/x")


@pytest.mark.parametrize(("override", "message"), [
    ("method.tau=-1", "tau .* must be >= 0, got -1"),
    ("method.lr=-1", "need lr > 0"),
    ("method.lr=0", "need lr > 0"),
])
def test_bad_method_values_are_refused_before_any_model_loads(tmp_path, override, message):
    with pytest.raises(UserError, match=f"method: {message}"):
        run(tmp_path, "limit=1", "method=vlmteach", override, "student.path=/nonexistent/student")  # no load
    assert not list(tmp_path.rglob("records*.jsonl"))


@pytest.mark.parametrize("limit", [-3, 0])
def test_a_limit_below_one_is_refused(tmp_path, limit):
    with pytest.raises(UserError, match=f"limit={limit}: give the number of instances"):
        run(tmp_path, f"limit={limit}")


def test_a_run_that_ends_with_errors_exits_3(tmp_path):
    marker = tmp_path / "fail"
    marker.touch()
    cmd = [sys.executable, "-m", "harness.eval", f"output_root={tmp_path}", "limit=2", "progress=false",
           "method._target_=tests.runner_doubles.FailWhileMarked", "+method.fail_ids=[micro/id/avoid_forbidden/00000]",
           f"+method.marker={marker}"]
    done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    assert done.returncode == 3, done.stderr[-2000:]
    assert "INCOMPLETE: 1 error (python -m harness.status" in done.stdout


def test_a_score_stage_run_counts_instances_it_could_not_score_as_unfinished(tmp_path):
    run(tmp_path, "limit=1", "stage=generate", "run_name=staged")
    runner = compose_runner(tmp_path, "limit=2", "stage=score", "run_name=staged")
    runner.execute(NullSink())
    assert runner.unfinished_summary() == "1 missing"


def test_a_judge_nobody_answers_for_stops_the_run_once(tmp_path):
    with pytest.raises(UserError, match="nothing answers"):
        run(tmp_path, "limit=3", "bench._target_=tests.runner_doubles.UnreachableJudge")
    assert not [r for p in tmp_path.rglob("records*.jsonl") for r in rec.read_lines(p)]  # no error per instance
