"""A run directory read for tables: the latest record per planned instance, and how complete the run is."""

from __future__ import annotations

import importlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from omegaconf import OmegaConf

from harness.records import STATUS_OK, read_trace
from harness.rundir import Completeness, RunDir
from harness.types import Trace, UserError

# Runs written before the manifests named their trace type: vlmteach's, the one trace with an audit, is told by its
# per-step log.
LOOP_TRACE = "harness.vlmteach.trace.VlmTeachTrace"

log = logging.getLogger(__name__)


def display_method(label: str, oracle: bool) -> str:
    return f"{label} (oracle)" if oracle else label


@dataclass
class RunResults:
    path: Path
    bench: str
    method: str
    config_hash: str
    records: list[dict[str, Any]]  # latest record per instance, sorted by id; traces typed (harness.records.read_trace)
    completeness: Completeness
    has_manifest: bool
    membership: dict[str, dict[str, str]]  # planned id -> {task, category, split}, where known
    seed: int | None = None  # the run's base seed (config.yaml), None where unknown
    bench_target: str | None = None  # the benchmark's class (config.yaml's bench._target_), None where unknown
    audit: str | None = None  # the module that audits this run's traces (harness.results.audit), if they have one
    oracle: bool = False  # its method reads the answer key (the records' ``oracle``, from Method.is_oracle)

    @property
    def flag(self) -> str:
        """'complete' or 'INCOMPLETE: 3 missing, 1 error, ...'."""
        c = self.completeness
        if not self.has_manifest:
            return "INCOMPLETE: no manifest (n expected unknown)"
        parts = [
            f"{len(ids)} {what}"
            for ids, what in [(c.missing, "missing"), (c.errored, "error"), (c.unscored, "unscored"),
                              (c.duplicated, "duplicated"), (c.unplanned, "unplanned (not in the means)"),
                              (c.missing_shards, "shard(s) never started")]
            if ids
        ]
        return "INCOMPLETE: " + ", ".join(parts) if parts else "complete"

    @property
    def complete(self) -> bool:
        return self.has_manifest and self.completeness.complete

    @property
    def expected_ids(self) -> list[str] | None:
        """The instances the manifests plan; None without a manifest."""
        return self.completeness.planned if self.has_manifest else None


def load_run(path: str | Path) -> RunResults:
    run = RunDir(path)
    manifests = run.manifests() if run.path.is_dir() else []
    if not manifests and not (run.path.is_dir() and run.records_files()):
        raise UserError(f"{run.path} is not a run directory (no manifest*.json or records*.jsonl)")
    latest = run.latest_records()
    completeness = run.completeness()
    # A record no manifest plans (say, of a former evaluation set in a re-used directory) is flagged, and kept
    # out of the means: it is not part of the run the manifests describe.
    left_out = set(completeness.unplanned) if manifests else set()
    records = [latest[i] for i in sorted(latest) if i not in left_out]
    not_finite = [r["instance_id"] for r in records if r["status"] == STATUS_OK and not math.isfinite(r["score"])]
    if not_finite:  # written before the runner recorded these as errors
        raise UserError(f"{run.path} has ok records with a non-finite score: {', '.join(not_finite[:10])}; "
                        "re-run the run's command (or its shards): it scores them again")

    def single(field: str, values: Iterable[str]) -> str:
        found = sorted(set(values))
        if len(found) > 1:
            raise UserError(f"{run.path} mixes {field}s {found}: one run directory holds one (bench, method, config)")
        return found[0] if found else ""

    bench = single("bench", [r["bench"] for r in records] + [m["bench"] for m in manifests if "bench" in m])
    method = single("method", [r["method"] for r in records] + [m["method"] for m in manifests if "method" in m])
    chash = single("config hash", [r["config_hash"] for r in records if r["config_hash"]]
                   + [m["config_hash"] for m in manifests if "config_hash" in m])
    trace_name = single("trace type", [m["trace"] for m in manifests if m.get("trace")])
    if not trace_name and any("per_step" in r["trace"] for r in records):
        trace_name = LOOP_TRACE
    trace_type = _trace_type(trace_name) if trace_name else None
    records = [{**r, "trace": read_trace(r["trace"], trace_type)} for r in records]
    # Manifests named the audit itself before they named the trace type.
    audit = single("audit", [m["audit"] for m in manifests if m.get("audit")]) or getattr(trace_type, "audit", None)
    membership = {iid: _groups_of(r) for iid, r in latest.items() if iid not in left_out}
    for manifest in manifests:  # optional per-instance groups, so missing instances count per group
        for iid, groups in manifest.get("instance_groups", {}).items():
            membership[iid] = _groups_of(groups)
    config = OmegaConf.load(run.config_path) if run.config_path.is_file() else OmegaConf.create()
    return RunResults(run.path, bench, method, chash, records, completeness, bool(manifests), membership,
                      seed=config.get("seed"), bench_target=OmegaConf.select(config, "bench._target_"), audit=audit,
                      oracle=any(r["oracle"] for r in records))


def _trace_type(name: str) -> type[Trace] | None:
    """The trace type a manifest names; None where it no longer imports (renamed since): its traces stay dicts,
    and the reader is told, since their audit is then missing from the tables."""
    module, _, qualname = name.rpartition(".")
    try:
        return getattr(importlib.import_module(module), qualname)
    except (ImportError, AttributeError) as exc:
        log.warning("the run's manifests name the trace type %s, which does not import here (%s): its traces are "
                    "read as plain dicts, without their audit", name, exc)
        return None


def _groups_of(row: dict[str, Any]) -> dict[str, str]:
    return {"task": row["task"], "category": row["category"], "split": row["split"]}
