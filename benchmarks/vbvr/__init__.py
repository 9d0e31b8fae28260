"""VBVR-Bench (arXiv 2602.20159): loader, generation protocols, official scorers, official aggregation.

The scorers are VBVR-EvalKit's own (optional extra ``vbvr``, pinned in ``official.PINNED_COMMIT``);
loading, generation and aggregation work without it.
"""

from benchmarks.vbvr.aggregate import TABLE_COLUMNS, official_aggregate
from benchmarks.vbvr.benchmark import VbvrBenchmark

__all__ = ["TABLE_COLUMNS", "VbvrBenchmark", "official_aggregate"]
