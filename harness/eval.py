"""Entry point: ``python -m harness.eval bench=micro method=vlmteach student=micro teacher=micro``.

Runs one method over one benchmark shard, then prints the run's table. With ``--multirun`` each
job is one run, and the sweep's comparison table is printed at the end (harness.callbacks).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
import torch
from hydra._internal.utils import get_args_parser
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from harness.config import CONF_DIR, validate_overrides
from harness.types import UserError

log = logging.getLogger("harness")

# Exit codes of a single run: 0 every planned instance of the shard done; 2 a user or config error
# (nothing run, or the run stopped: see the message); 3 the run ended with errors, unscored or missing
# instances (tables are written, and say INCOMPLETE). 1 is Python's: a crash. A multirun: 3 when any job's
# shard ended so, 1 when a job failed (Hydra's).
EXIT_USER_ERROR = 2
EXIT_INCOMPLETE = 3


def run(cfg: DictConfig) -> Path:
    from harness.results.summary import write_run_tables
    from harness.runner import Runner
    from harness.sinks import make_sink

    hc = HydraConfig.get()
    if cfg.cpu_threads:
        torch.set_num_threads(cfg.cpu_threads)
    runner = Runner(cfg, dict(hc.runtime.choices))
    sink = make_sink(cfg.logger)
    ok = False
    try:
        run_dir = runner.execute(sink)
        summary, table_md, table_df = write_run_tables(run_dir.path)
        sink.finish(run_dir.path, summary, table_df, run_dir.playable_videos())
        ok = True
    finally:
        if not ok:
            sink.abort()
        runner.release_models()  # a multirun's next job loads its own: this one's must not stay on the GPU
    incomplete = runner.unfinished_summary()
    if hc.mode != RunMode.MULTIRUN:
        print(table_md)
        print(f"\nrun directory: {run_dir.path}")
        if incomplete:
            print(f"INCOMPLETE: {incomplete} (python -m harness.status {run_dir.path} lists them; "
                  "re-running the command retries them)")
            sys.exit(EXIT_INCOMPLETE)
    else:  # jobs of a pool share the terminal: one line each, then the sweep's comparison (harness.callbacks)
        print(f"{runner.label} {f'INCOMPLETE ({incomplete})' if incomplete else 'done'}: {run_dir.path}")
        sweep_runs = Path(hc.sweep.dir) / "runs"
        sweep_runs.mkdir(parents=True, exist_ok=True)
        (sweep_runs / f"{hc.job.num:04d}.txt").write_text(str(run_dir.path.resolve()))
        if incomplete:  # the sweep's exit code says so (harness.callbacks), as a single run's does
            (sweep_runs / f"{hc.job.num:04d}.incomplete").write_text(f"{runner.label}: {incomplete}")
    return run_dir.path


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from harness.devices import pinned_gpu

    try:
        with pinned_gpu():  # before CUDA starts: one GPU per job when a launcher asks for it
            run(cfg)
    except UserError as exc:
        log.error("%s", exc)
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # one failed job: the sweep's other jobs go on, and Hydra reports this one when all have ended
        sys.exit(EXIT_USER_ERROR)


def cli() -> None:
    # Hydra's own parser separates its flags (``--cfg job``, ``--config-dir /x``, ``-m``) from the overrides.
    args = get_args_parser().parse_args()
    try:
        validate_overrides(args.overrides, args.config_dir)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    main()
    from harness.callbacks import SweepTable

    if SweepTable.unfinished_jobs:  # a multirun: jobs whose shard ended with unfinished instances
        print(f"INCOMPLETE: {'; '.join(SweepTable.unfinished_jobs)} (re-running the command retries them)")
        sys.exit(EXIT_INCOMPLETE)


if __name__ == "__main__":
    cli()
