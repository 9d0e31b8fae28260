"""`hydra/launcher=local_cpus` end to end on the micro world: a multirun's jobs run in a pool of worker
processes (what `make eval` does), one line each in the shared terminal, then one comparison table; a job
that fails does not take the others' records with it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import records as rec
from harness.config import CONF_DIR
from harness.rundir import RunDir

ROOT = CONF_DIR.parent
LIMIT = 4


def multirun(out: Path, *overrides: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "harness.eval", "-m", "hydra/launcher=local_cpus", "hydra.launcher.n_jobs=2",
           f"output_root={out / 'runs'}", f"hydra.sweep.dir={out / 'sweep'}", "bench=micro", "method=frozen",
           f"limit={LIMIT}", "progress=false", *overrides]
    return subprocess.run(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def pool_sweep(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """Three shards of one run for a pool of two workers: the third job waits for a free worker."""
    out = tmp_path_factory.mktemp("pool")
    return out, multirun(out, "num_shards=3", "shard=0,1,2")


def test_pool_runs_every_job_and_prints_one_comparison(pool_sweep):
    out, done = pool_sweep
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run_path,) = {p.parent for p in (out / "runs").rglob("manifest*.json")}
    run = RunDir(run_path)
    ids = [[r["instance_id"] for r in rec.read_lines(run.records_path(s, 3))] for s in range(3)]
    assert sorted(sum(ids, [])) == sorted(set(sum(ids, []))) and len(sum(ids, [])) == LIMIT
    assert all(r["status"] == "ok" for s in range(3) for r in rec.read_lines(run.records_path(s, 3)))
    # one line per job in the shared terminal, not each job's (incomplete) per-run table
    assert sorted(line.split(" done:")[0] for line in done.stdout.splitlines() if " done: " in line) == [
        "frozen shard 0/3", "frozen shard 1/3", "frozen shard 2/3"]
    assert "INCOMPLETE" not in done.stdout
    assert done.stdout.count("## micro — baseline: frozen") == 1
    assert (out / "sweep" / "table.md").read_text().count("- frozen: complete") == 1  # three shards, one run


def test_a_failing_job_fails_the_sweep_and_keeps_the_others_records(tmp_path):
    done = multirun(tmp_path, "num_shards=2", "shard=0,1,2")  # shard 2 of 2 does not exist
    assert done.returncode != 0
    assert "shard=2 is out of range for num_shards=2" in done.stdout + done.stderr
    (run_path,) = {p.parent for p in (tmp_path / "runs").rglob("manifest*.json")}
    run = RunDir(run_path)
    assert sum(len(rec.read_lines(run.records_path(s, 2))) for s in (0, 1)) == LIMIT


def test_a_job_that_ends_incomplete_makes_the_sweep_exit_3(tmp_path):
    """As a single run does: a diverging LoRA (lr 1e30) records every instance as an error, not a crash."""
    done = multirun(tmp_path, "method=vlmteach", "method.lr=1e30", "method.num_steps=2", "method.early_stop=false",
                    "seed=0,1")
    assert done.returncode == 3, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"INCOMPLETE: vlmteach: {LIMIT} error; vlmteach: {LIMIT} error" in done.stdout
    records = [r for path in (tmp_path / "runs").rglob("records*.jsonl") for r in rec.read_lines(path)]
    assert len(records) == 2 * LIMIT and {r["status"] for r in records} == {"error"}
