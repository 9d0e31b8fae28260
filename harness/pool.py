"""Workers of the ``local_cpus`` pool die with the sweep's process.

``kill -9`` of a multirun (an OOM killer, a scheduler's time limit) must not leave its pool's workers
running on and writing records: each worker asks the kernel (Linux ``prctl(PR_SET_PDEATHSIG)``) for a
SIGKILL when its parent dies. A kill mid-write leaves at most a torn last line, which every reader skips.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent_pid: int) -> None:
    """SIGKILL this process when ``parent_pid`` (its parent) dies; at once if it already has."""
    if not sys.platform.startswith("linux"):
        log.warning("pool workers outlive a killed sweep on %s (no prctl); stop them by hand if you kill it", sys.platform)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    # The signal fires when the thread that started this worker ends: loky starts workers from the thread
    # that submits the jobs (the sweep's main thread), or from its manager thread to replace a lost one;
    # both live as long as the pool.
    if os.getppid() != parent_pid:  # the parent died before the request: nobody would send the signal
        os.kill(os.getpid(), signal.SIGKILL)


class DieWithSweep(Callback):
    """Made in the sweep's process (which it remembers) and sent to each worker with its jobs."""

    def __init__(self) -> None:
        self.sweep_pid = os.getpid()

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if os.getpid() != self.sweep_pid:  # a job run in the sweep's own process (basic launcher) is left alone
            die_with_parent(self.sweep_pid)
