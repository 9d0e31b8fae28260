"""harness.status on hand-built sharded run directories (the runner's exact file layout)."""

import json

import pytest

from harness import records as rec
from harness.rundir import RunDir
from harness.status import main, run_status

IDS = [f"micro/reach/{k:03d}" for k in range(6)]


def record(iid, status=rec.STATUS_OK, shard="0/2"):
    return rec.Record(
        instance_id=iid, bench="micro", task="reach", category="nav", split="id", method="frozen", seed=1,
        status=status, score=0.5 if status == rec.STATUS_OK else None, config_hash="h1", shard=shard,
        error="RuntimeError: CUDA out of memory (at runner.py:1)" if status == rec.STATUS_ERROR else None,
        error_stage="generate" if status == rec.STATUS_ERROR else None,
    )


def write_shard(run: RunDir, shard, num_shards, ids, statuses=None):
    """Manifest + records of one shard as the runner writes them; statuses: id -> status (None: no record)."""
    statuses = statuses if statuses is not None else {i: rec.STATUS_OK for i in ids}
    run.path.mkdir(parents=True, exist_ok=True)
    manifest = {"bench": "micro", "method": "frozen", "config_hash": "h1", "shard": shard,
                "num_shards": num_shards, "instance_ids": ids}
    run.manifest_path(shard, num_shards).write_text(json.dumps(manifest))
    for iid, status in statuses.items():
        if status is not None:
            rec.append(run.records_path(shard, num_shards), record(iid, status, f"{shard}/{num_shards}"))


def two_shards(tmp_path, second=None):
    run = RunDir(tmp_path / "micro" / "frozen" / "r")
    write_shard(run, 0, 2, IDS[:3])
    write_shard(run, 1, 2, IDS[3:], second)
    return run


def status_of(capsys, *args):
    code = main([str(a) for a in args])
    return code, capsys.readouterr().out


def test_complete_sharded_run_exits_zero(tmp_path, capsys):
    run = two_shards(tmp_path)
    code, out = status_of(capsys, run.path)
    assert code == 0
    assert out.startswith("complete")
    assert "1 of 1 runs complete" in out
    all_row = next(line.split() for line in out.splitlines() if line.strip().startswith("all"))
    assert all_row[:7] == ["all", "6", "6", "0", "0", "0", "complete"]


def test_each_problem_is_named_in_its_shard(tmp_path, capsys):
    missing, errored, unscored = IDS[3], IDS[4], IDS[5]
    run = two_shards(tmp_path, {missing: None, errored: rec.STATUS_ERROR, unscored: rec.STATUS_GENERATED})
    code, out = status_of(capsys, run.path)
    assert code == 1 and out.startswith("INCOMPLETE")
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("  ") and "/" in line.split()[0]}
    assert rows["0/2"][1:7] == ["3", "3", "0", "0", "0", "complete"]
    assert rows["1/2"][1:7] == ["3", "0", "1", "1", "1", "INCOMPLETE"]
    assert f"missing (1): {missing}" in out
    assert f"errored (1): {errored}" in out and "CUDA out of memory" in out
    assert f"unscored (1): {unscored}" in out and "stage=score" in out


def test_duplicate_record_across_shard_files_is_refused_and_named(tmp_path, capsys):
    run = two_shards(tmp_path)
    dup = IDS[1]  # shard 0's instance, also recorded by shard 1 (e.g. a shard run with the wrong num_shards)
    rec.append(run.records_path(1, 2), record(dup, shard="1/2"))
    code, out = status_of(capsys, run.path)
    assert code == 1
    assert f"duplicated (1): {dup}" in out
    assert f"{dup}: planned by manifest-0of2.json; recorded in records-0of2.jsonl, records-1of2.jsonl" in out


def test_unplanned_record_is_refused(tmp_path, capsys):
    run = two_shards(tmp_path)
    rec.append(run.records_path(0, 2), record("micro/reach/999"))
    code, out = status_of(capsys, run.path)
    assert code == 1 and "unplanned (1): micro/reach/999" in out


def test_shard_that_never_started_is_reported(tmp_path):
    run = RunDir(tmp_path / "r")
    write_shard(run, 0, 3, IDS[:2])
    write_shard(run, 2, 3, IDS[4:])
    status = run_status(run.path)
    # every planned instance is done, but one shard never planned any: the run is not complete
    assert status.completeness.missing_shards == [1] and not status.completeness.complete
    assert status.missing_shards == [(1, 3)] and not status.complete


def test_not_started_shard_row_and_exit_code(tmp_path, capsys):
    run = RunDir(tmp_path / "r")
    write_shard(run, 0, 3, IDS[:2])
    code, out = status_of(capsys, run.path)
    assert code == 1
    assert sum("NOT STARTED" in line for line in out.splitlines()) == 2  # shards 1/3 and 2/3


def test_folder_of_runs_counts_each_run(tmp_path, capsys):
    two_shards(tmp_path / "a")
    two_shards(tmp_path / "b", {IDS[3]: None, IDS[4]: rec.STATUS_OK, IDS[5]: rec.STATUS_OK})
    code, out = status_of(capsys, tmp_path)
    assert code == 1 and "1 of 2 runs complete" in out


def test_unreadable_manifest_is_reported_not_crashed(tmp_path, capsys):
    run = two_shards(tmp_path)
    run.manifest_path(1, 2).write_text('{"bench": "mic')  # killed while writing
    code, out = status_of(capsys, run.path)
    assert code == 1 and "unreadable manifest manifest-1of2.json" in out


def test_long_id_lists_are_cut_on_request(tmp_path, capsys):
    run = two_shards(tmp_path, {i: None for i in IDS[3:]})
    code, out = status_of(capsys, "--max-ids", "1", run.path)
    assert code == 1 and f"missing (3): {IDS[3]} ... and 2 more" in out
    code, out = status_of(capsys, "--max-ids", "0", run.path)
    assert f"missing (3): {', '.join(IDS[3:])}" in out


def test_bad_path_is_a_usage_error(tmp_path, capsys):
    assert main([str(tmp_path / "nope")]) == 2
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2
    assert "no run directory" in capsys.readouterr().err


@pytest.mark.parametrize("num_shards", [1, 3])
def test_merged_counts_match_completeness(tmp_path, num_shards):
    from harness.sharding import select_shard

    run = RunDir(tmp_path / "r")
    for s in range(num_shards):
        ids = select_shard(IDS, s, num_shards)
        write_shard(run, s, num_shards, ids, {i: (None if i == IDS[2] else rec.STATUS_OK) for i in ids})
    status = run_status(run.path)
    assert sum(len(s.planned) for s in status.shards) == 6
    assert sum(s.ok for s in status.shards) == 5
    assert status.completeness.missing == [IDS[2]] and not status.complete


def test_broken_records_line_is_reported_not_crashed(tmp_path, capsys):
    run = two_shards(tmp_path)
    with open(run.records_path(1, 2), "a") as f:  # a torn line with a record appended after it
        f.write('{"instance_id": "micro/re' + record(IDS[3], shard="1/2").to_json() + "\n")
    code, out = status_of(capsys, run.path)
    assert code == 1 and "unreadable records file records-1of2.jsonl" in out


def test_sweep_jobs_are_expanded_like_hydra_numbers_them(tmp_path, capsys):
    """Sweeper params (as experiment configs set them) x command-line sweeps; no job has started."""
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text(
        "hydra:\n"
        "  sweeper:\n"
        "    _target_: hydra._internal.core_plugins.basic_sweeper.BasicSweeper\n"
        "    params:\n"
        "      method: frozen,best_of_n\n"
        "  overrides:\n"
        f"    task: [num_shards=2, 'shard=range(0,2)', 'output_root={tmp_path / 'runs'}']\n"
    )
    code, out = status_of(capsys, sweep)
    assert code == 1 and "0 of 2 runs complete" in out
    commands = [line.split(": ", 1)[1] for line in out.splitlines() if "to finish shard" in line]
    assert [line.split("(job ")[1].split(")")[0] for line in out.splitlines() if "to finish shard" in line] == ["0", "1", "2", "3"]
    assert commands[0] == f"python -m harness.eval method=frozen num_shards=2 shard=0 output_root={tmp_path / 'runs'}"
    assert commands[3].startswith("python -m harness.eval method=best_of_n num_shards=2 shard=1")
    assert out.count("NOT STARTED") == 4


def test_shards_planned_from_different_lists_are_reported(tmp_path, capsys):
    run = two_shards(tmp_path)
    for shard, limit in ((0, 6), (1, 5)):
        path = run.manifest_path(shard, 2)
        manifest = json.loads(path.read_text())
        path.write_text(json.dumps({**manifest, "plan": {"limit": limit, "instances": limit, "ids_sha256": str(limit)}}))
    code, out = status_of(capsys, run.path)
    assert code == 1 and "shards disagree on plan" in out and '"limit": 5' in out
