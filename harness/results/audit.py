"""A method's own audit of its runs, rendered beside the tables (harness.vlmteach.teacher_audit is one).

An audit reads the method's traces: their type declares it as ``Trace.audit``, the name of a module that imports
without torch, as tables are computed without it. The runner names the trace type in the run's manifests
(harness.runner), and the run's audit comes with it (harness.results.runs); here it is imported and asked for its
rows and their markdown.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Protocol

from harness.results.runs import RunResults


class Audit(Protocol):
    """What an audit module has."""

    NAME: str  # the key of its rows in summary.json's ``audits`` and of its W&B table

    def rows(self, run: RunResults, companions: list[RunResults],
             levels: dict[str, Callable[[dict[str, Any]], str]]) -> list[dict[str, Any]]:
        """Rows for one run: ``companions`` are the runs compared beside it (none in a run's own table), ``levels``
        the group key per level (harness.results.rows.main_levels); [] where the run has nothing to audit."""

    def markdown(self, bench: str, label: str, rows: list[dict[str, Any]]) -> list[str]:
        """Its section of a table.md or comparison, as lines."""


def audit_of(run: RunResults) -> Audit | None:
    return None if run.audit is None else importlib.import_module(run.audit)
