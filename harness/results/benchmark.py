"""What a run's benchmark declares for its results (harness.types.Benchmark): its official aggregation, and the
paper table its runs are compared with.

The class is the one the run's config.yaml names (``bench._target_``). It is imported, never built (building
loads the data): so a benchmark module must import without torch, as tables are computed without it.
"""

from __future__ import annotations

import importlib
from typing import Any

from harness.results.runs import RunResults
from harness.types import UserError


def benchmark_class(run: RunResults) -> type | None:
    """The run's benchmark class; None for a run whose config names none."""
    if run.bench_target is None:
        return None
    module, _, name = run.bench_target.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise UserError(f"{run.path}: cannot import its benchmark {run.bench_target} "
                        f"(config.yaml's bench._target_): {type(exc).__name__}: {exc}") from exc


def official_label(run: RunResults) -> str:
    return f"{run.bench_target}.official_aggregate"


def official_aggregation(run: RunResults) -> dict[str, Any] | None:
    """The benchmark's ``official_aggregate(records, expected_ids=...)``, or None where it has none.

    ``expected_ids`` are the manifest's (missing instances are then counted there too). A failure inside it, or in
    importing it, is reported as ``{"error": ...}`` in the summary and table, never hidden.
    """
    try:
        bench = benchmark_class(run)
        return None if bench is None else bench.official_aggregate(run.records, expected_ids=run.expected_ids)
    except Exception as exc:  # noqa: BLE001 - shown in the summary and table instead of aborting them
        return {"error": f"{official_label(run)} failed: {type(exc).__name__}: {exc}"}


def official_warnings(official: dict[str, Any] | None) -> list[str]:
    return list(official.get("warnings", [])) if isinstance(official, dict) else []


def reference_tables(runs: list[RunResults]) -> list[str]:
    """The paper tables the runs' benchmarks declare, each once. A benchmark that cannot be imported declares
    none here: its runs' official aggregation shows why."""
    names = []
    for run in runs:
        try:
            bench = benchmark_class(run)
        except UserError:
            continue
        if bench is not None and bench.reference_table is not None:
            names.append(bench.reference_table)
    return list(dict.fromkeys(names))
