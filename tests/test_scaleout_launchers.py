"""The launcher configs (conf/hydra/launcher/) compose with the real config and say what they promise."""

import os
import shlex
import stat
import subprocess
from pathlib import Path

import pytest
import submitit
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from omegaconf import OmegaConf

from harness.config import CONF_DIR


def launcher_cfg(*overrides):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["hydra.job.name=eval", "hydra.sweep.dir=/shared/sweep", *overrides],
                      return_hydra_config=True)
    return cfg.hydra


def sbatch_script(hydra_cfg, n_jobs, tmp_path, monkeypatch):
    """The sbatch file hydra-submitit-launcher would submit, built the way its launch() builds the executor."""
    srun = tmp_path / "srun"  # submitit's SLURM executor only checks that srun exists; nothing is submitted
    srun.write_text("#!/bin/sh\n")
    srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    params = OmegaConf.to_container(hydra_cfg.launcher, resolve=True)
    params.pop("_target_")
    executor = submitit.AutoExecutor(folder=params.pop("submitit_folder"), cluster="slurm",
                                     slurm_max_num_timeout=params.pop("max_num_timeout"))
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    slurm = executor._executor
    slurm.parameters["map_count"] = n_jobs
    return slurm, slurm._make_submission_file_text("python -m submitit.core._submit /shared/sweep", "uid")


def test_slurm_launcher_requests_one_gpu_per_task_and_requeues(tmp_path, monkeypatch):
    hydra_cfg = launcher_cfg("hydra/launcher=slurm", "hydra.launcher.partition=gpu")
    assert hydra_cfg.launcher._target_.endswith("SlurmLauncher")
    slurm, script = sbatch_script(hydra_cfg, 16, tmp_path, monkeypatch)
    for flag in ("--array=0-15%16", "--gpus-per-task=1", "--partition=gpu", "--requeue", "--signal=USR2@120",
                 "--time=240", "--output=/shared/sweep/.submitit/%A_%a/"):
        assert f"#SBATCH {flag}" in script
    assert "unset HARNESS_GPUS" in script  # the scheduler, not harness.devices, assigns GPUs on SLURM
    assert slurm.max_num_timeout == 20  # timeouts requeue too: safe because the runner resumes
    _, big = sbatch_script(hydra_cfg, 200, tmp_path, monkeypatch)
    assert "#SBATCH --array=0-199%64" in big  # array_parallelism caps the running tasks


def test_local_gpus_launcher_runs_processes_and_pins_from_harness_gpus(monkeypatch):
    monkeypatch.delenv("HARNESS_GPUS", raising=False)
    hydra_cfg = launcher_cfg("hydra/launcher=local_gpus")
    assert hydra_cfg.launcher._target_.endswith("LocalLauncher")
    assert hydra_cfg.launcher.gpus_per_node is None  # GPUs come from the pin, not from submitit
    assert hydra_cfg.launcher.timeout_min >= 24 * 60
    assert hydra_cfg.job.env_set.HARNESS_GPUS == "auto"
    monkeypatch.setenv("HARNESS_GPUS", "2,3")
    assert launcher_cfg("hydra/launcher=local_gpus").job.env_set.HARNESS_GPUS == "2,3"


@pytest.mark.parametrize("launcher", ["slurm", "local_gpus", "local_cpus"])
def test_launchers_leave_the_job_config_alone(launcher):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        a = compose(config_name="config")
        b = compose(config_name="config", overrides=[f"hydra/launcher={launcher}"])
    assert OmegaConf.to_container(a) == OmegaConf.to_container(b)  # same config hash, same run directory


def test_local_cpus_launcher_is_a_pool_of_one_worker_per_core_without_gpu_pinning(monkeypatch):
    monkeypatch.delenv("HARNESS_GPUS", raising=False)
    hydra_cfg = launcher_cfg("hydra/launcher=local_cpus")
    assert hydra_cfg.launcher._target_.endswith("JoblibLauncher")
    assert hydra_cfg.launcher.n_jobs == -1 and int(hydra_cfg.launcher.batch_size) == 1  # a free worker takes the next job
    assert "HARNESS_GPUS" not in hydra_cfg.job.env_set


def _make_eval(*variables):
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(["make", "-s", "-n", "-C", str(root), "eval", *variables], capture_output=True, text=True,
                         check=True).stdout
    return next(line for line in out.splitlines() if "harness.eval" in line)


def _sweep_jobs(line: str) -> list[dict[str, str]]:
    """The jobs of a `harness.eval --multirun` command line, in the order Hydra's sweeper launches them."""
    args = shlex.split(line)
    overrides = OverridesParser.create().parse_overrides(args[args.index("--multirun") + 1:])
    (batch,) = BasicSweeper.split_arguments(overrides, max_batch_size=None)
    return [dict(o.split("=", 1) for o in job) for job in batch]


def test_make_eval_runs_the_micro_comparison_slowest_first_in_shards_for_the_pool():
    line = _make_eval()
    assert "hydra/launcher=local_cpus" in line
    jobs = [(job["method"], job["shard"]) for job in _sweep_jobs(line)]
    # both vlmteach shards first, frozen's last: the pool's last jobs are its shortest
    assert jobs == [(m, s) for m in ("vlmteach", "pass_at_k", "best_of_n", "frozen") for s in ("0", "1")]
    assert "--multirun" not in _make_eval("SHARDS=1", "METHOD=frozen")
    real = _make_eval("BENCH=ruler", "METHOD=vlmteach")
    assert "--multirun" not in real and "num_shards" not in real  # GPU benchmarks pick their own launcher
