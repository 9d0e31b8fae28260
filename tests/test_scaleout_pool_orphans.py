"""Issue 30: `kill -9` of a `local_cpus` sweep takes its pool's workers with it (harness.pool)."""

import os
import signal
import subprocess
import sys
import time

import pytest

from harness.config import CONF_DIR

ROOT = CONF_DIR.parent

# The sweep's process as the joblib launcher runs it: the callback is made here, then each of two loky
# workers runs a job that starts like any job of the pool (on_job_start) and then works for a long time.
SWEEP = """
import os, sys, time
from joblib import Parallel, delayed
from harness.pool import DieWithSweep

def job(callback, pid_file):
    callback.on_job_start(config=None)
    with open(pid_file + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(pid_file + ".tmp", pid_file)
    while True:
        time.sleep(0.05)

Parallel(n_jobs=2, backend="loky")(delayed(job)(DieWithSweep(), f"{sys.argv[1]}/{i}.pid") for i in range(2))
"""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux's")
def test_kill_minus_nine_of_the_sweep_kills_its_workers(tmp_path):
    sweep = subprocess.Popen([sys.executable, "-c", SWEEP, str(tmp_path)], cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        while len(list(tmp_path.glob("*.pid"))) < 2:
            assert sweep.poll() is None, "the sweep ended before its workers started"
            time.sleep(0.05)
        workers = [int(p.read_text()) for p in tmp_path.glob("*.pid")]
        assert sweep.pid not in workers and all(alive(w) for w in workers)  # pool workers, not the sweep's process
    finally:
        sweep.send_signal(signal.SIGKILL)
        sweep.wait()
    # loky's own check would end a worker only after ~40 s; the kernel's signal ends it at once
    deadline = time.monotonic() + 15
    while any(alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = [w for w in workers if alive(w)]
    for w in survivors:  # leave no process behind, whatever the outcome
        os.kill(w, signal.SIGKILL)
    assert not survivors, f"workers {survivors} outlived their sweep"
