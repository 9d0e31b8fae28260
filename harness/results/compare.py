"""Runs of one benchmark side by side: one row per method, the paired difference against a baseline method and
the paper's numbers (harness.results.reference) as rows; one comparison per set of runs that can be paired."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from harness.results.audit import audit_of
from harness.results.benchmark import official_aggregation, official_label, official_warnings, reference_tables
from harness.results.reference import load_reference, reference_rows
from harness.results.render import STATS_NOTE, comparison_markdown, official_compare_md
from harness.results.rows import main_levels, run_rows
from harness.results.runs import RunResults, display_method, load_run
from harness.types import UserError


def _label_runs(runs: list[RunResults], warned: set[Path] = frozenset()) -> dict[Path, str]:
    """Method label per run; runs sharing a label are told apart by their directory name, and a run
    whose official aggregation warns is marked (the warnings are listed under the runs)."""
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.method] = counts.get(r.method, 0) + 1
    return {r.path: display_method(r.method, r.oracle) + (f" @{r.path.name}" if counts[r.method] > 1 else "")
            + (" [NOT COMPARABLE: see warning]" if r.path in warned else "") for r in runs}


def compare(run_dirs: Iterable[str | Path], baseline: str = "frozen",
            reference: str | list[str] | None = None) -> tuple[str, pd.DataFrame]:
    """Markdown and a long DataFrame comparing runs per benchmark, with paired Δ and paper rows. Without
    ``reference``, each benchmark's own paper table (``Benchmark.reference_table``) is shown."""
    runs = [load_run(p) for p in run_dirs]
    if not runs:
        raise UserError("no run directories given")
    refs = [reference] if isinstance(reference, str) else list(reference or [])
    by_bench: dict[str, list[RunResults]] = {}
    for r in runs:
        by_bench.setdefault(r.bench, []).append(r)
    sections, frames = [], []
    for bench in sorted(by_bench):
        bench_refs = refs or reference_tables(by_bench[bench])
        paper = [row for name in bench_refs for row in reference_rows(load_reference(name), name)]
        if refs:  # an explicitly named table of another benchmark goes to its own bench only
            paper = [row for row in paper if row["bench"] == bench]
        for title, group in comparable_sets(by_bench[bench]):
            md, frame = _compare_bench(bench, group, baseline, paper, title)
            sections.append(md)
            frames.append(frame)
    for name in refs:  # a reference whose benchmark has no run is still printed
        ref = load_reference(name)
        if not set(ref["bench"]) & set(by_bench):
            md, frame = _compare_bench(str(ref["bench"].iloc[0]), [], baseline, reference_rows(ref, name))
            sections.append(md)
            frames.append(frame)
    return "\n".join(sections + [STATS_NOTE, ""]), pd.concat(frames, ignore_index=True)


def comparable_sets(runs: list[RunResults]) -> list[tuple[str, list[RunResults]]]:
    """Runs pair up only on the same instances with the same base seed: one comparison per such set (a folder
    can hold a full run beside a trial of its first instances, or several seeds), titled where there are several."""
    sets: dict[tuple[Any, tuple[str, ...]], list[RunResults]] = {}
    for r in runs:
        sets.setdefault((r.seed, tuple(r.completeness.planned)), []).append(r)
    if len(sets) == 1:
        return [("", runs)]
    ordered = sorted(sets.items(), key=lambda kv: (-len(kv[0][1]), str(kv[0][0])))
    return [(f" (seed {seed}, {len(planned)} instances)", group) for (seed, planned), group in ordered]


def _compare_bench(bench: str, runs: list[RunResults], baseline: str,
                   paper: list[dict[str, Any]], title: str = "") -> tuple[str, pd.DataFrame]:
    official = {r.path: official_aggregation(r) for r in runs}
    warnings = {path: official_warnings(o) for path, o in official.items()}
    labels = _label_runs(runs, {path for path, w in warnings.items() if w})
    base_runs = [r for r in runs if r.method == baseline]
    if len(base_runs) > 1:
        raise UserError(f"{bench}: {len(base_runs)} runs of baseline {baseline!r} "
                        f"({', '.join(str(r.path) for r in base_runs)}); pass only one")
    base = base_runs[0] if base_runs else None
    rows = []
    for r in sorted(runs, key=lambda r: (r.method != baseline, labels[r.path])):
        for row in run_rows(r, baseline=base if base is not None and r is not base else None):
            rows.append({"bench": bench, "source": "run", "method": labels[r.path], "run": str(r.path),
                         "complete": r.complete, **row})

    lines = [f"## {bench}{title}" + (f" — baseline: {baseline}" if runs else " — paper only"), ""]
    for r in runs:
        lines += [f"- {labels[r.path]}: {r.flag} ({r.path})"] + [f"  - **WARNING: {w}**" for w in warnings[r.path]]
    if runs and base is None:
        lines.append(f"- baseline {baseline!r} not among these runs: no paired difference column")
    lines.append("")
    lines += comparison_markdown(bench, rows, paper, baseline if base is not None else None)
    with_official = [r for r in runs if official[r.path]]
    hooks = ", ".join(dict.fromkeys(official_label(r) for r in with_official))
    lines += official_compare_md(bench, hooks, {labels[r.path]: official[r.path] for r in with_official})
    for r in runs:
        if (audit := audit_of(r)) and (audit_rows := audit.rows(r, runs, main_levels(r))):
            lines += audit.markdown(bench, labels[r.path], audit_rows)
    return "\n".join(lines), pd.DataFrame(rows + paper)
