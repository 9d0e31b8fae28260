"""Where a run's results are reported besides its own directory: nowhere, or Weights & Biases.

The run directory stays the source of truth; a sink only mirrors it. Lifecycle, driven by
harness.eval: ``start`` before the first instance, ``log_record`` after each one, then ``finish``
with the derived tables, or ``abort`` when the run failed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
from hydra.utils import instantiate
from omegaconf import DictConfig

from harness.rundir import RunDir

INSTANCE_COLUMNS = ("instance_id", "task", "category", "split", "method", "seed", "status", "score",
                    "error", "error_stage", "total_s", "steps", "video")


class Sink(Protocol):
    def start(self, run_dir: Path, resolved_config: dict[str, Any], name: str) -> None: ...

    def log_record(self, record: dict[str, Any]) -> None: ...

    def finish(self, run_dir: Path, summary: dict[str, Any], table_df: pd.DataFrame, videos: list[Path]) -> None: ...

    def abort(self) -> None: ...


def make_sink(cfg_logger: DictConfig | dict[str, Any] | None) -> Sink:
    """The sink a ``logger`` config names (``_target_`` + kwargs); no config means NullSink."""
    if cfg_logger is None:
        return NullSink()
    return instantiate(cfg_logger, _convert_="all")


class NullSink:
    """Reports nothing: the harness runs completely without W&B."""

    def start(self, run_dir: Path, resolved_config: dict[str, Any], name: str) -> None:
        pass

    def log_record(self, record: dict[str, Any]) -> None:
        pass

    def finish(self, run_dir: Path, summary: dict[str, Any], table_df: pd.DataFrame, videos: list[Path]) -> None:
        pass

    def abort(self) -> None:
        pass


class WandbSink:
    """One W&B run per run directory: config (+ config_hash), per-instance table, summary table, videos.

    Offline by default (compute nodes rarely reach the internet): upload later with
    ``wandb sync <run_dir>/wandb/offline-run-*``.
    """

    def __init__(self, *, project: str, entity: str | None = None, mode: str = "offline",
                 group: str | None = None, tags: list[str] | None = None, max_videos: int = 4,
                 job_type: str = "eval"):
        if mode not in ("offline", "online", "disabled"):
            raise ValueError(f"logger.mode must be offline, online or disabled, not {mode!r}")
        self.project, self.entity, self.mode, self.group = project, entity, mode, group
        self.tags, self.max_videos, self.job_type = list(tags or []), max_videos, job_type
        self._run = None
        self._records: dict[str, dict[str, Any]] = {}

    def start(self, run_dir: Path, resolved_config: dict[str, Any], name: str) -> None:
        import wandb

        config = {k: v for k, v in resolved_config.items() if k != "hydra"}
        config["config_hash"] = _config_hash(Path(run_dir))
        self._run = wandb.init(
            project=self.project, entity=self.entity, mode=self.mode, group=self.group, tags=self.tags,
            job_type=self.job_type, name=name, config=config, dir=os.environ.get("WANDB_DIR", str(run_dir)),
            reinit="create_new",  # several runs in one process (Hydra multirun) never append to each other
        )

    def log_record(self, record: dict[str, Any]) -> None:
        self._records[record["instance_id"]] = record  # the last attempt of an instance wins
        if self._run is not None and record.get("status") == "ok":
            self._run.log({"instance/score": record["score"]})

    def finish(self, run_dir: Path, summary: dict[str, Any], table_df: pd.DataFrame, videos: list[Path]) -> None:
        import wandb

        if self._run is None:
            raise RuntimeError("WandbSink.finish called before start")
        run, self._run = self._run, None
        exit_code = 1
        try:
            # Records of earlier attempts (a resumed run) are in the run directory, not the buffer.
            records = {**RunDir(run_dir).latest_records(), **self._records}
            rows = [[_cell(r, c) for c in INSTANCE_COLUMNS] for _, r in sorted(records.items())]
            tables = {"instances": wandb.Table(columns=list(INSTANCE_COLUMNS), data=rows),
                      "summary_table": _wandb_table(table_df)}
            for name, audit_rows in summary["audits"].items():  # the method's own audit (harness.results.audit)
                if audit_rows:
                    tables[name] = _wandb_table(pd.DataFrame(audit_rows))
            run.log(tables)
            for i, path in enumerate(videos[: self.max_videos]):
                run.log({f"video/{i}": wandb.Video(str(path), format="mp4", caption=Path(path).stem)})
            overall = next((r for r in summary["rows"] if r["level"] == "overall"), {})
            run.summary.update({
                "overall/mean": overall.get("mean"), "overall/ci_low": overall.get("ci_low"),
                "overall/ci_high": overall.get("ci_high"), "overall/n": overall.get("n"),
                "overall/n_error": overall.get("n_error"), "overall/n_expected": overall.get("n_expected"),
                "complete": summary["complete"], "flag": summary["flag"],
                "official": json.dumps(summary.get("official"), default=str),
                "warnings": "; ".join(summary.get("warnings", [])),  # e.g. a RULER judge prompt that is not official
            })
            exit_code = 0
        finally:
            run.finish(exit_code=exit_code)

    def abort(self) -> None:
        """Close the W&B run as failed (exit code 1), so a crash never shows as 'finished'."""
        if self._run is not None:
            run, self._run = self._run, None
            run.finish(exit_code=1)


def _wandb_table(frame: pd.DataFrame):
    import wandb

    return wandb.Table(dataframe=frame.astype(object).where(frame.notna(), None))  # NaN as an empty cell


def _config_hash(run_dir: Path) -> str:
    hashes = {m.get("config_hash", "") for m in RunDir(run_dir).manifests()}
    return hashes.pop() if len(hashes) == 1 else ""


def _cell(record: dict[str, Any], column: str) -> Any:
    if column == "total_s":
        return record.get("timings", {}).get("total_s")
    return record.get(column)
