"""One process per shard of a run: an exclusive lock on ``<run>/records[-<i>of<n>].lock``.

The lock is an flock (``filelock.FileLock`` on Unix): the kernel releases it when its holder exits,
however it exits (``kill -9`` included), so a lock file left by a dead process never blocks a later run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from harness.rundir import shard_suffix
from harness.types import UserError


def lock_path(run_path: Path, shard: int, num_shards: int) -> Path:
    return run_path / f"records{shard_suffix(shard, num_shards)}.lock"


@contextmanager
def shard_lock(run_path: Path, shard: int, num_shards: int) -> Iterator[None]:
    """Hold the shard's lock for the block; refuse at once (UserError) while another process holds it."""
    lock = FileLock(lock_path(run_path, shard, num_shards), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        which = f"shard {shard}/{num_shards} of " if num_shards > 1 else ""
        raise UserError(
            f"another process is running {which}{run_path} now (it holds {lock.lock_file}). Two processes on one "
            "shard would compute every instance twice: wait for that one to end (python -m harness.status shows "
            "its progress), or stop it. A lock left by a process that died is released by the system."
        ) from None
    except OSError as exc:  # e.g. a read-only run directory (Timeout is an OSError too: caught first)
        raise UserError(f"cannot write in the run directory {run_path} ({exc.strerror or exc}): choose a writable "
                        "output_root=...") from None
    try:
        yield
    finally:
        lock.release()
