"""One GPU per job on one machine: pin ``CUDA_VISIBLE_DEVICES`` from the Hydra job number.

Hydra's local launchers do not assign GPUs: joblib jobs all see every GPU, and ``submitit_local``
gives every job the same ones (with ``gpus_per_node`` unset, none). When ``HARNESS_GPUS`` is set
(``hydra/launcher=local_gpus`` sets it), job ``k`` runs on ``gpus[k % len(gpus)]``, and jobs that
share a GPU take turns through a lock file, so a GPU never holds two models at once. On SLURM the
scheduler assigns GPUs and ``HARNESS_GPUS`` stays unset.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, MutableMapping, Sequence

from harness.types import UserError

log = logging.getLogger(__name__)

GPUS_ENV = "HARNESS_GPUS"  # "0,1,2,3" or "auto" (every GPU nvidia-smi lists); unset or empty: no pinning
LOCK_DIR_ENV = "HARNESS_GPU_LOCK_DIR"  # where the per-GPU lock files live (default: the temp dir)


def detect_gpus() -> list[str]:
    """Indices of the GPUs of this machine, from nvidia-smi (which, unlike CUDA, needs no init)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        raise UserError(
            f"{GPUS_ENV}=auto needs nvidia-smi to list this machine's GPUs, and it is not on PATH. "
            f"Name the GPUs instead, e.g. {GPUS_ENV}=0,1,2,3."
        )
    out = subprocess.run([exe, "--query-gpu=index", "--format=csv,noheader"], capture_output=True, text=True)
    gpus = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    if out.returncode != 0 or not gpus:
        raise UserError(f"nvidia-smi found no GPUs ({out.stderr.strip() or 'empty output'}); set {GPUS_ENV}=0,1,... or unset it.")
    return gpus


def parse_gpus(value: str) -> list[str]:
    """``"auto"`` or a comma-separated list of GPU indices / UUIDs, as CUDA_VISIBLE_DEVICES takes them."""
    if value.strip() == "auto":
        return detect_gpus()
    gpus = [g.strip() for g in value.split(",")]
    if any(not g for g in gpus) or len(set(gpus)) != len(gpus):
        raise UserError(f"{GPUS_ENV}={value!r} is not a list of distinct GPUs; write e.g. {GPUS_ENV}=0,1,2,3 or {GPUS_ENV}=auto.")
    return gpus


def gpu_for_job(job_num: int, gpus: Sequence[str]) -> str:
    """Round-robin: concurrent jobs spread over all GPUs before any GPU gets a second job."""
    if job_num < 0:
        raise ValueError(f"job number must be >= 0, got {job_num}")
    return gpus[job_num % len(gpus)]


def hydra_job_number() -> int:
    """The Hydra job number of this process (0 outside a multirun)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    return int(hc.job.num) if hc.mode == RunMode.MULTIRUN else 0


def _lock_path(gpu: str) -> Path:
    root = Path(os.environ.get(LOCK_DIR_ENV) or Path(tempfile.gettempdir()) / f"harness-gpu-locks-{os.getuid()}")
    root.mkdir(parents=True, exist_ok=True)
    return root / f"gpu-{re.sub(r'[^A-Za-z0-9_.-]', '_', gpu)}.lock"


@contextmanager
def _gpu_lock(gpu: str) -> Iterator[None]:
    # flock is released by the kernel when the process dies, so a killed job never blocks a GPU.
    with open(_lock_path(gpu), "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("GPU %s is busy with another job of this machine; waiting for it", gpu)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _refuse_late_pinning(gpu: str, environ: MutableMapping[str, str]) -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized() and environ.get("CUDA_VISIBLE_DEVICES") != gpu:
        raise RuntimeError(
            f"cannot pin this job to GPU {gpu}: CUDA is already initialised in this process. Pinning needs one "
            "process per job: use hydra/launcher=local_gpus (or unset HARNESS_GPUS with the basic launcher)."
        )


@contextmanager
def pinned_gpu(job_num: int | None = None, environ: MutableMapping[str, str] = os.environ) -> Iterator[str | None]:
    """Run the body on this job's GPU (``CUDA_VISIBLE_DEVICES``) when ``HARNESS_GPUS`` asks for it.

    Must be entered before CUDA is initialised. Yields the GPU, or None when pinning is off.
    """
    value = environ.get(GPUS_ENV, "").strip()
    if not value:
        yield None
        return
    job = hydra_job_number() if job_num is None else job_num
    gpu = gpu_for_job(job, parse_gpus(value))
    _refuse_late_pinning(gpu, environ)
    environ["CUDA_VISIBLE_DEVICES"] = gpu
    with _gpu_lock(gpu):
        log.info("job %d runs on GPU %s (%s=%s)", job, gpu, GPUS_ENV, value)
        yield gpu
