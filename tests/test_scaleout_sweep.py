"""Scale-out end to end on the micro world: two shards as two pinned submitit processes
(``hydra/launcher=local_gpus``), merged equal to one unsharded run, resume of a damaged shard,
and ``harness.status`` on the sweep."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from harness import records as rec
from harness.config import CONF_DIR
from harness.rundir import RunDir
from harness.runner import Runner
from harness.sinks import NullSink
from harness.status import main as status_main
from harness.video import read_mp4

ROOT = CONF_DIR.parent
LIMIT = 4
OVERRIDES = ["bench=micro", "method=frozen", f"limit={LIMIT}", "progress=false"]


def run_in_process(output_root: Path, *overrides: str) -> RunDir:
    """What one job's task function does (harness.eval), without a new process."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"output_root={output_root}", *OVERRIDES, *overrides],
                      return_hydra_config=True)
    choices = dict(cfg.hydra.runtime.choices)
    with open_dict(cfg):
        del cfg["hydra"]
    return Runner(cfg, choices).execute(NullSink())


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """Two shards launched as one multirun, each job its own process pinned to its own 'GPU'."""
    out = tmp_path_factory.mktemp("sweep")
    cmd = [sys.executable, "-m", "harness.eval", "-m", "hydra/launcher=local_gpus", f"output_root={out / 'runs'}",
           *OVERRIDES, "num_shards=2", "shard=0,1", f"hydra.sweep.dir={out / 'sweep'}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HARNESS_GPUS": "0,1", "HARNESS_GPU_LOCK_DIR": str(out / "locks")}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def the_run(out: Path) -> RunDir:
    (path,) = {p.parent for p in (out / "runs").rglob("manifest*.json")}
    return RunDir(path)


def copy_sweep(src: Path, dst: Path) -> Path:
    """A copy whose sweep files point at the copy (they hold absolute paths)."""
    shutil.copytree(src, dst)
    for path in [dst / "sweep" / "multirun.yaml", *(dst / "sweep" / "runs").glob("*.txt")]:
        path.write_text(path.read_text().replace(str(src), str(dst)))
    return dst


def test_shards_run_as_separate_processes_each_on_its_gpu(sweep):
    job_logs = sorted((sweep / "sweep" / ".submitit").glob("*/*_log.*"))
    assert len({p.parent for p in job_logs}) == 2  # two submitit jobs, i.e. two processes
    logs = "".join(p.read_text() for p in job_logs)
    assert "job 0 runs on GPU 0" in logs and "job 1 runs on GPU 1" in logs
    run = the_run(sweep)
    assert [p.name for p in run.records_files()] == ["records-0of2.jsonl", "records-1of2.jsonl"]
    per_shard = [[r["instance_id"] for r in rec.read_lines(run.records_path(s, 2))] for s in (0, 1)]
    planned = [m["instance_ids"] for m in run.manifests()]
    assert per_shard == planned and len(planned[0]) == len(planned[1]) == LIMIT // 2
    assert not set(planned[0]) & set(planned[1])


def test_merged_shards_equal_one_unsharded_run(sweep, tmp_path):
    sharded = the_run(sweep)
    single = run_in_process(tmp_path)
    merged, whole = sharded.latest_records(), single.latest_records()
    assert sorted(merged) == sorted(whole) and len(whole) == LIMIT
    for iid, r in whole.items():
        m = merged[iid]
        assert m["status"] == r["status"] == "ok"
        assert (m["score"], m["scores"], m["seed"]) == (r["score"], r["scores"], r["seed"])
        assert np.array_equal(read_mp4(sharded.path / m["video"]), read_mp4(single.path / r["video"]))
    assert status_main([str(sweep / "sweep")]) == 0


def test_requeued_shard_resumes_a_truncated_records_file(sweep, tmp_path):
    out = copy_sweep(sweep, tmp_path / "copy")
    run = the_run(out)
    shard0, shard1 = run.records_path(0, 2), run.records_path(1, 2)
    before0 = shard0.read_bytes()
    kept, lost = shard1.read_text().splitlines(keepends=True)
    shard1.write_text(kept + lost[: len(lost) // 2])  # the writer died mid-line
    assert status_main([str(run.path)]) == 1

    for shard in (0, 1):  # the requeued jobs: the same arguments again
        run_in_process(out / "runs", "num_shards=2", f"shard={shard}")

    assert shard0.read_bytes() == before0  # shard 0 had nothing to redo
    lines = rec.read_lines(shard1)
    assert lines[0] == json.loads(kept)  # the ok instance was not redone
    assert [r["instance_id"] for r in lines] == [json.loads(kept)["instance_id"], json.loads(lost)["instance_id"]]
    assert all(r["status"] == "ok" for r in lines)
    (run.path / "table.md").unlink()
    assert status_main(["--tables", str(out / "sweep")]) == 0  # complete again; tables rebuilt from both shards
    assert "INCOMPLETE" not in (run.path / "table.md").read_text()


def test_status_of_a_sweep_names_the_shard_that_never_ran(sweep, tmp_path, capsys):
    out = copy_sweep(sweep, tmp_path / "copy")
    run = the_run(out)
    for path in (run.manifest_path(1, 2), run.records_path(1, 2), out / "sweep" / "runs" / "0001.txt"):
        path.unlink()
    assert status_main([str(out / "sweep")]) == 1
    text = capsys.readouterr().out
    assert "1/2" in text and "NOT STARTED" in text
    assert "to finish shard 1/2 (job 1): python -m harness.eval" in text and "shard=1" in text


def test_status_refuses_a_record_duplicated_across_shard_files(sweep, tmp_path, capsys):
    out = copy_sweep(sweep, tmp_path / "copy")
    run = the_run(out)
    stray = rec.read_lines(run.records_path(0, 2))[0]
    with open(run.records_path(1, 2), "a") as f:
        f.write(json.dumps(stray) + "\n")
    assert status_main([str(out / "sweep")]) == 1
    assert f"duplicated (1): {stray['instance_id']}" in capsys.readouterr().out
