"""GPU pinning per job (harness.devices), checked on CPU: the mapping, and what job processes see."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import submitit
import torch

from harness import devices
from harness.types import UserError


def test_jobs_spread_round_robin_over_the_gpus():
    gpus = ["0", "1", "2"]
    assert [devices.gpu_for_job(k, gpus) for k in range(7)] == ["0", "1", "2", "0", "1", "2", "0"]
    assert devices.gpu_for_job(5, ["GPU-aaaa", "GPU-bbbb"]) == "GPU-bbbb"
    with pytest.raises(ValueError):
        devices.gpu_for_job(-1, gpus)


def test_gpu_lists_are_parsed_and_checked():
    assert devices.parse_gpus(" 0, 1,3 ") == ["0", "1", "3"]
    for bad in ("0,,1", "1,1", ","):
        with pytest.raises(UserError, match="HARNESS_GPUS=0,1,2,3"):
            devices.parse_gpus(bad)


def fake_nvidia_smi(folder, output, code=0):
    exe = folder / "nvidia-smi"
    exe.write_text(f"#!/bin/sh\nprintf '{output}'\nexit {code}\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)


def test_auto_lists_the_gpus_nvidia_smi_reports(tmp_path, monkeypatch):
    fake_nvidia_smi(tmp_path, "0\\n1\\n2\\n3\\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert devices.parse_gpus("auto") == ["0", "1", "2", "3"]
    fake_nvidia_smi(tmp_path, "", code=9)
    with pytest.raises(UserError, match="found no GPUs"):
        devices.parse_gpus("auto")


def test_auto_without_nvidia_smi_says_what_to_set(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserError, match="HARNESS_GPUS=0,1,2,3"):
        devices.parse_gpus("auto")


def test_without_harness_gpus_nothing_is_pinned():
    env = {"CUDA_VISIBLE_DEVICES": "4,5"}
    with devices.pinned_gpu(3, environ=env) as gpu:
        assert gpu is None and env == {"CUDA_VISIBLE_DEVICES": "4,5"}


def test_pinning_after_cuda_init_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv(devices.LOCK_DIR_ENV, str(tmp_path))
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    env = {devices.GPUS_ENV: "0,1", "CUDA_VISIBLE_DEVICES": "0,1"}
    with pytest.raises(RuntimeError, match="one process per job"):
        with devices.pinned_gpu(1, environ=env):
            pass


def run_local_jobs(tmp_path, monkeypatch, gpus, hold_s, n_jobs):
    """n_jobs at once through submitit's local executor (one process each), as hydra/launcher=local_gpus runs them."""
    monkeypatch.setenv(devices.GPUS_ENV, gpus)
    monkeypatch.setenv(devices.LOCK_DIR_ENV, str(tmp_path / "locks"))
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1]))

    def job(job_num, hold_s):
        """Enters the pin, reports what CUDA would see and when it held the GPU (pickled by value)."""
        import os
        import time

        from harness.devices import pinned_gpu

        seen_before = os.environ.get("CUDA_VISIBLE_DEVICES")
        with pinned_gpu(job_num) as gpu:
            start = time.time()
            time.sleep(hold_s)
            return {"before": seen_before, "gpu": gpu, "cuda_visible": os.environ["CUDA_VISIBLE_DEVICES"],
                    "start": start, "end": time.time()}

    executor = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="local")
    executor.update_parameters(timeout_min=2)
    jobs = executor.map_array(job, list(range(n_jobs)), [hold_s] * n_jobs)
    return [j.result() for j in jobs]


def test_job_processes_get_their_own_gpu_and_take_turns_on_a_shared_one(tmp_path, monkeypatch):
    results = run_local_jobs(tmp_path, monkeypatch, "0,1", hold_s=0.5, n_jobs=3)
    assert [r["before"] for r in results] == ["", "", ""]  # submitit_local hides every GPU from its jobs ...
    assert [r["cuda_visible"] for r in results] == ["0", "1", "0"]  # ... the pin gives each job its own
    first, second = sorted([results[0], results[2]], key=lambda r: r["start"])
    assert second["start"] >= first["end"]  # jobs 0 and 2 share GPU 0, one after the other


def test_a_killed_job_frees_its_gpu(tmp_path):
    env = {**os.environ, devices.GPUS_ENV: "0", devices.LOCK_DIR_ENV: str(tmp_path),
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    hold = "from harness.devices import pinned_gpu\nwith pinned_gpu(0):\n    print('held', flush=True)\n    input()"
    holder = subprocess.Popen([sys.executable, "-c", hold], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.kill()  # SIGKILL: no cleanup code runs
    holder.wait()
    take = "from harness.devices import pinned_gpu\nwith pinned_gpu(0) as gpu:\n    print(gpu)"
    taker = subprocess.run([sys.executable, "-c", take], env=env, capture_output=True, text=True, timeout=60)
    assert taker.stdout.strip() == "0"  # took the GPU at once (a held lock would block until the timeout)
