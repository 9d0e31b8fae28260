"""Hydra callback: after a multirun, print and save the comparison table of all its runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class SweepTable(Callback):
    unfinished_jobs: list[str] = []  # "<label>: 2 error" per job that ended INCOMPLETE (harness.eval's exit code)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from harness.table import compare

        runs_dir = Path(config.hydra.sweep.dir) / "runs"
        SweepTable.unfinished_jobs = [p.read_text() for p in sorted(runs_dir.glob("*.incomplete"))]
        run_dirs = sorted({Path(p.read_text().strip()) for p in runs_dir.glob("*.txt")})
        if not run_dirs:
            return
        markdown, _ = compare(run_dirs, baseline=config.baseline)
        (runs_dir.parent / "table.md").write_text(markdown)
        print("\n" + markdown)
        print(f"\nsweep table: {runs_dir.parent / 'table.md'}")
