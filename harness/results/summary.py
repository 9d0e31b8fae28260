"""One run's tables: summary.json, table.md and table.csv, written into its directory.

A benchmark's official aggregation may return ``warnings`` (e.g. RULER verdicts given under a judge
prompt that is not the benchmark's own): they head the run's table.md, go into summary.json, every
row of table.csv and the W&B summary, and mark the run's label in comparisons.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from harness import stats
from harness.judge_usage import judge_usage_line, run_judge_usage
from harness.results.audit import audit_of
from harness.results.benchmark import official_aggregation, official_label, official_warnings
from harness.results.render import STATS_NOTE, fmt, fmt_cost, md_table, official_md, warnings_md
from harness.results.rows import main_levels, run_rows
from harness.results.runs import RunResults, display_method, load_run
from harness.rundir import atomic_write_text

SUMMARY_SCHEMA = 2  # 2: a method's audit rows under "audits" (were "teacher_verdicts")


def run_summary(run: RunResults) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rows = run_rows(run)
    c = run.completeness
    audit = audit_of(run)
    summary = {
        "schema": SUMMARY_SCHEMA,
        "run_dir": str(run.path),
        "bench": run.bench,
        "method": run.method,
        "oracle": run.oracle,
        "config_hash": run.config_hash,
        "complete": run.complete,
        "flag": run.flag,
        "completeness": {"n_planned": len(c.planned), **{k: v for k, v in asdict(c).items() if k != "planned"}},
        "bootstrap": {"n_resamples": stats.N_RESAMPLES, "seed": stats.SEED, "confidence": stats.CONFIDENCE,
                      "unit": "task within category"},
        "rows": rows,
        "official": official_aggregation(run),
        "judge_usage": run_judge_usage(run.records),
        "audits": {audit.NAME: audit.rows(run, [], main_levels(run))} if audit else {},
    }
    summary["warnings"] = official_warnings(summary["official"])
    return summary, rows


def run_markdown(run: RunResults, summary: dict[str, Any]) -> str:
    head = f"## {run.bench} / {display_method(run.method, run.oracle)} — {run.path.name}"
    flag = f"**{run.flag}**" if not run.complete else f"complete ({len(run.completeness.planned)} instances)"
    body = [
        [row["level"], row["group"], fmt(row["mean"]), f"[{fmt(row['ci_low'])}, {fmt(row['ci_high'])}]",
         str(row["n"]), "?" if row["n_expected"] is None else str(row["n_expected"]), str(row["n_error"]),
         str(row["n_unscored"]), fmt_cost(row["mean_seconds"]), fmt_cost(row["mean_steps"])]
        for row in summary["rows"]
    ]
    lines = [head, "", *warnings_md(summary["warnings"]), flag, "", f"config_hash: `{run.config_hash}`", ""]
    header = ["level", "group", "mean", "95% CI", "n", "n expected", "err", "unscored", "s/inst", "work/inst"]
    lines += md_table(header, body)
    lines += [""] + judge_usage_line(summary["judge_usage"]) + official_md(summary["official"], official_label(run))
    if audit := audit_of(run):
        if rows := summary["audits"][audit.NAME]:
            lines += audit.markdown(run.bench, display_method(run.method, run.oracle), rows)
    return "\n".join(lines + [STATS_NOTE, ""])


def _jsonable(obj: Any) -> Any:
    """numpy scalars and arrays (e.g. from an official aggregation) as plain JSON values."""
    for attr in ("item", "tolist"):
        if hasattr(obj, attr):
            return getattr(obj, attr)()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_run_tables(run_dir: str | Path) -> tuple[dict[str, Any], str, pd.DataFrame]:
    """Write summary.json, table.md and table.csv into the run directory; return all three."""
    run = load_run(run_dir)
    summary, rows = run_summary(run)
    markdown = run_markdown(run, summary)
    frame = pd.DataFrame(rows).assign(bench=run.bench, method=display_method(run.method, run.oracle),
                                      warnings="; ".join(summary["warnings"]))
    atomic_write_text(run.path / "summary.json", json.dumps(summary, indent=1, sort_keys=True, default=_jsonable) + "\n")
    atomic_write_text(run.path / "table.md", markdown)
    atomic_write_text(run.path / "table.csv", frame.to_csv(index=False))
    return summary, markdown, frame
