"""The former single module of the results tables, kept for callers written against it: the code is in
``harness.results`` (see its docstring for which room holds what)."""

from harness.results.compare import compare
from harness.results.reference import load_reference, match_key, reference_names
from harness.results.rows import LEVELS, run_rows
from harness.results.runs import RunResults, load_run
from harness.results.summary import run_summary, write_run_tables

__all__ = ["LEVELS", "RunResults", "compare", "load_reference", "load_run", "match_key", "reference_names",
           "run_rows", "run_summary", "write_run_tables"]
