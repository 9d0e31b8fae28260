"""Records in, tables out: the one place where result tables are computed.

A run directory (harness.rundir) becomes rows per level — overall, split, split x category,
category, task — each with mean, 95% CI (harness.stats, tasks resampled within categories), n,
errors and the expected n from the manifests. Errored or unscored instances never enter a mean;
they are counted beside it, and an incomplete run says so in its table header.

``compare`` puts runs of the same benchmark side by side, one row per method, with the paired
difference against a baseline method and the paper's numbers (results/reference) as rows.

A benchmark's official aggregation may return ``warnings`` (e.g. RULER verdicts given under a judge
prompt that is not the benchmark's own): they head the run's table.md, go into summary.json, every
row of table.csv and the W&B summary, and mark the run's label in comparisons.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import pandas as pd
from omegaconf import OmegaConf

from harness import stats, teacher_audit
from harness.judge_usage import judge_usage_line, mean_judge_tokens, run_judge_usage
from harness.paths import REFERENCE_DIR
from harness.records import STATUS_ERROR, STATUS_GENERATED, STATUS_OK
from harness.rundir import Completeness, RunDir, atomic_write_text
from harness.types import UserError

SUMMARY_SCHEMA = 1
DEFAULT_REFERENCE = {"vbvr": "vbvr_table1", "ruler": "ruler_table4"}
ORACLE_PREFIX = "pass_at_k"
FROZEN = "frozen"  # the method whose videos are the untouched student's (the teacher audit's start)

# level name -> group key of one record
LEVELS: dict[str, Callable[[dict[str, Any]], str]] = {
    "overall": lambda r: "all",
    "split": lambda r: r["split"],
    "split/category": lambda r: f"{r['split']}/{r['category']}",
    "category": lambda r: r["category"],
    "task": lambda r: r["task"],
}
SPLIT_LEVELS = ("split", "split/category")  # shown only when a run has more than one split
MAIN_LEVELS = ("overall", "split", "category")  # columns of the comparison table
DETAIL_LEVELS = ("split/category", "task")  # rows of the detail tables

STATS_NOTE = (
    f"Cells: mean [95% CI] n. CI: percentile bootstrap, {stats.N_RESAMPLES} resamples (seed {stats.SEED}), "
    "tasks resampled within categories (a one-task category resamples its instances; a task row its instances). "
    "Errored and unscored instances are excluded from means and counted as err. "
    "Δ: mean paired difference against the baseline on instances ok in both, same bootstrap; "
    "p: two-sided Wilcoxon signed-rank on the paired instances (treats instances as independent); "
    "p Holm: the same, Holm-adjusted over the methods compared in the table. "
    "(oracle): Pass@k selects with the benchmark's own scorer, an upper bound rather than a deployable method."
)


def display_method(label: str) -> str:
    return f"{label} (oracle)" if label.startswith(ORACLE_PREFIX) else label


# -- loading -------------------------------------------------------------------------------------


@dataclass
class RunResults:
    path: Path
    bench: str
    method: str
    config_hash: str
    records: list[dict[str, Any]]  # latest record per instance, sorted by id
    completeness: Completeness
    has_manifest: bool
    membership: dict[str, dict[str, str]]  # planned id -> {task, category, split}, where known
    seed: int | None = None  # the run's base seed (config.yaml), None where unknown

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
    membership = {iid: _groups_of(r) for iid, r in latest.items() if iid not in left_out}
    for manifest in manifests:  # optional per-instance groups, so missing instances count per group
        for iid, groups in manifest.get("instance_groups", {}).items():
            membership[iid] = _groups_of(groups)
    seed = OmegaConf.load(run.config_path).get("seed") if run.config_path.is_file() else None
    return RunResults(run.path, bench, method, chash, records, completeness, bool(manifests), membership, seed)


def _groups_of(row: dict[str, Any]) -> dict[str, str]:
    return {"task": row["task"], "category": row["category"], "split": row["split"]}


# -- rows ----------------------------------------------------------------------------------------


def _levels(records: list[dict[str, Any]]) -> list[str]:
    many_splits = len({r["split"] for r in records}) > 1
    return [lvl for lvl in LEVELS if many_splits or lvl not in SPLIT_LEVELS]


def _units(level: str, rows: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Bootstrap clusters and strata: tasks within categories; instances for a single task's row."""
    if level == "task":
        return [r["instance_id"] for r in rows], ["" for _ in rows]
    return [r["task"] for r in rows], [r["category"] for r in rows]


def _mean_of(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def run_rows(run: RunResults, baseline: RunResults | None = None) -> list[dict[str, Any]]:
    """One row per (level, group) of a run; with a baseline run, paired-difference columns too."""
    base_ok = {r["instance_id"]: r for r in baseline.records if r["status"] == STATUS_OK} if baseline else {}
    planned = run.completeness.planned
    membership_known = all(i in run.membership for i in planned)
    out = []
    for level in _levels(run.records):
        key_of = LEVELS[level]
        for group in sorted({key_of(r) for r in run.records}):
            in_group = [r for r in run.records if key_of(r) == group]
            ok = [r for r in in_group if r["status"] == STATUS_OK]
            cell = f"{run.bench}|{level}|{group}"
            est = stats.cluster_bootstrap([r["score"] for r in ok], *_units(level, ok), key=cell)
            if level == "overall":
                n_expected: int | None = len(planned) if run.has_manifest else None
            elif run.has_manifest and membership_known:
                n_expected = sum(1 for i in planned if key_of(run.membership[i]) == group)
            else:
                n_expected = None  # a missing instance's group is unknown
            seconds = [r["timings"]["total_s"] for r in ok if "total_s" in r.get("timings", {})]
            row = {
                "level": level, "group": group,
                "category": in_group[0]["category"] if level == "task" else None,
                "mean": est.mean if est else None, "ci_low": est.ci_low if est else None,
                "ci_high": est.ci_high if est else None, "n": len(ok),
                "n_error": sum(r["status"] == STATUS_ERROR for r in in_group),
                "n_unscored": sum(r["status"] == STATUS_GENERATED for r in in_group),
                "n_expected": n_expected,
                "mean_seconds": _mean_of(seconds), "mean_steps": _mean_of([float(r.get("steps", 0)) for r in ok]),
                "judge_tokens": mean_judge_tokens(ok),
            }
            if baseline is not None:
                pairs = [(r, base_ok[r["instance_id"]]) for r in ok if r["instance_id"] in base_ok]
                diff = stats.paired_difference(
                    [a["score"] for a, _ in pairs], [b["score"] for _, b in pairs],
                    *_units(level, [a for a, _ in pairs]), key=cell + "|paired",
                )
                row.update({
                    "diff_mean": diff.mean if diff else None, "diff_ci_low": diff.ci_low if diff else None,
                    "diff_ci_high": diff.ci_high if diff else None, "n_pairs": len(pairs),
                    "p_value": diff.p_value if diff else None,
                })
            out.append(row)
    return out


# -- official aggregation ------------------------------------------------------------------------


def official_aggregation(bench: str, records: list[dict[str, Any]],
                         expected_ids: list[str] | None = None) -> dict[str, Any] | None:
    """``benchmarks.<bench>.official_aggregate(records)`` when that package exposes it, else None.

    The manifest's ids go along as ``expected_ids`` where the function takes them (missing
    instances are then counted there too). A failure inside it is reported as ``{"error": ...}``
    in the summary and table, never hidden.
    """
    module_name = f"benchmarks.{bench}"
    try:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name in (module_name, "benchmarks"):
                return None  # no package for this benchmark: nothing official to show
            raise
        fn = getattr(module, "official_aggregate", None)
        if fn is None:
            return None
        takes_ids = expected_ids is not None and "expected_ids" in inspect.signature(fn).parameters
        return fn(records, expected_ids=expected_ids) if takes_ids else fn(records)
    except Exception as exc:  # noqa: BLE001 - shown in the summary and table instead of aborting them
        return {"error": f"{module_name}.official_aggregate failed: {type(exc).__name__}: {exc}"}


def _expected_ids(run: RunResults) -> list[str] | None:
    return run.completeness.planned if run.has_manifest else None


def official_warnings(official: dict[str, Any] | None) -> list[str]:
    return list(official.get("warnings", [])) if isinstance(official, dict) else []


def _warnings_md(warnings: list[str]) -> list[str]:
    return [f"**WARNING: {w}**" for w in warnings] + ([""] if warnings else [])


def _flatten(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(obj, dict):
        return [kv for k in obj for kv in _flatten(obj[k], f"{prefix}.{k}" if prefix else str(k))]
    return [(prefix, obj)]


def _official_md(official: dict[str, Any] | None, bench: str) -> list[str]:
    if official is None:
        return []
    lines = [f"### Official aggregation (benchmarks.{bench}.official_aggregate)", ""]
    notes = official.get("notes", []) if isinstance(official, dict) else []
    lines += _warnings_md(official_warnings(official))
    for key, value in _flatten({k: v for k, v in official.items() if k not in ("notes", "warnings")}):
        lines.append(f"- {key}: {_fmt(value) if isinstance(value, float) else value}")
    lines += [f"- note: {n}" for n in notes]
    return lines + [""]


# -- formatting ----------------------------------------------------------------------------------


def _fmt(x: float | None, sign: str = "") -> str:
    """3 decimals for scores in [0, 1] (VBVR, micro), 1 for percentages (RULER)."""
    if x is None or x != x:
        return "–"
    return f"{x:{sign}.3f}" if abs(x) < 2 else f"{x:{sign}.1f}"


def _fmt_cost(x: float | None) -> str:
    return "–" if x is None or x != x else f"{x:.1f}"


def _diff_cell(row: dict[str, Any]) -> str:
    """A row's paired difference against the baseline: mean [95% CI]."""
    return f"{_fmt(row['diff_mean'], '+')} [{_fmt(row['diff_ci_low'], '+')}, {_fmt(row['diff_ci_high'], '+')}]"


def _cell(row: dict[str, Any]) -> str:
    if row.get("source") == "paper":
        return _fmt(row["mean"])
    text = f"{_fmt(row['mean'])} [{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}] n={row['n']}"
    if row.get("n_expected") is not None and row["n_expected"] != row["n"]:
        text += f"/{row['n_expected']}"
    if row["n_error"]:
        text += f", {row['n_error']} err"
    return text


def _md_table(header: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in body]


def _jsonable(obj: Any) -> Any:
    """numpy scalars and arrays (e.g. from an official aggregation) as plain JSON values."""
    for attr in ("item", "tolist"):
        if hasattr(obj, attr):
            return getattr(obj, attr)()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


# -- one run -------------------------------------------------------------------------------------


def run_summary(run: RunResults) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rows = run_rows(run)
    c = run.completeness
    summary = {
        "schema": SUMMARY_SCHEMA,
        "run_dir": str(run.path),
        "bench": run.bench,
        "method": run.method,
        "oracle": run.method.startswith(ORACLE_PREFIX),
        "config_hash": run.config_hash,
        "complete": run.complete,
        "flag": run.flag,
        "completeness": {"n_planned": len(c.planned), **{k: v for k, v in asdict(c).items() if k != "planned"}},
        "bootstrap": {"n_resamples": stats.N_RESAMPLES, "seed": stats.SEED, "confidence": stats.CONFIDENCE,
                      "unit": "task within category"},
        "rows": rows,
        "official": official_aggregation(run.bench, run.records, _expected_ids(run)),
        "teacher_verdicts": teacher_audit.verdict_rows(run.records, [], _audit_levels(run)),
        "judge_usage": run_judge_usage(run.records),
    }
    summary["warnings"] = official_warnings(summary["official"])
    return summary, rows


def run_markdown(run: RunResults, summary: dict[str, Any]) -> str:
    head = f"## {run.bench} / {display_method(run.method)} — {run.path.name}"
    flag = f"**{run.flag}**" if not run.complete else f"complete ({len(run.completeness.planned)} instances)"
    body = [
        [row["level"], row["group"], _fmt(row["mean"]), f"[{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}]",
         str(row["n"]), "?" if row["n_expected"] is None else str(row["n_expected"]), str(row["n_error"]),
         str(row["n_unscored"]), _fmt_cost(row["mean_seconds"]), _fmt_cost(row["mean_steps"])]
        for row in summary["rows"]
    ]
    lines = [head, "", *_warnings_md(summary["warnings"]), flag, "", f"config_hash: `{run.config_hash}`", ""]
    lines += _md_table(["level", "group", "mean", "95% CI", "n", "n expected", "err", "unscored", "s/inst", "steps"], body)
    lines += [""] + judge_usage_line(summary["judge_usage"]) + _official_md(summary["official"], run.bench)
    if summary["teacher_verdicts"]:
        lines += _verdicts_md(run.bench, display_method(run.method), summary["teacher_verdicts"])
    return "\n".join(lines + [STATS_NOTE, ""])


def write_run_tables(run_dir: str | Path) -> tuple[dict[str, Any], str, pd.DataFrame]:
    """Write summary.json, table.md and table.csv into the run directory; return all three."""
    run = load_run(run_dir)
    summary, rows = run_summary(run)
    markdown = run_markdown(run, summary)
    frame = pd.DataFrame(rows).assign(bench=run.bench, method=display_method(run.method),
                                      warnings="; ".join(summary["warnings"]))
    atomic_write_text(run.path / "summary.json", json.dumps(summary, indent=1, sort_keys=True, default=_jsonable) + "\n")
    atomic_write_text(run.path / "table.md", markdown)
    atomic_write_text(run.path / "table.csv", frame.to_csv(index=False))
    return summary, markdown, frame


# -- reference (paper) rows ----------------------------------------------------------------------


def reference_names() -> list[str]:
    return sorted(p.stem for p in REFERENCE_DIR.glob("*.csv"))


def load_reference(name: str) -> pd.DataFrame:
    """A paper table from results/reference/<name>.csv (tidy: bench, model, oracle, cost_s, level, group, key, value)."""
    path = REFERENCE_DIR / f"{name}.csv"
    if not path.is_file():
        raise UserError(f"unknown reference table {name!r}; available: {', '.join(reference_names())}")
    return pd.read_csv(path, keep_default_na=False, na_values={"cost_s": [""], "value": [""]})


_SPLIT_ALIASES = {"indomain": "id", "indomain50": "id", "outofdomain": "ood", "outofdomain50": "ood"}


def match_key(level: str, group: str) -> str:
    """Spelling-insensitive group key, so a paper label finds the benchmark's own name."""
    def norm(s: str) -> str:
        return re.sub(r"[^a-z0-9]", "", s.lower())

    if level == "split":
        return _SPLIT_ALIASES.get(norm(group), norm(group))
    if level == "split/category":
        split, _, category = group.partition("/")
        return f"{match_key('split', split)}/{norm(category)}"
    return norm(group)


def _reference_rows(ref: pd.DataFrame, name: str) -> list[dict[str, Any]]:
    rows = []
    for rec in ref.to_dict("records"):
        model = f"paper: {rec['model']}" + (" (oracle)" if str(rec["oracle"]).lower() == "true" else "")
        cost = rec["cost_s"]
        rows.append({"bench": rec["bench"], "source": "paper", "method": model, "run": name, "level": rec["level"],
                     "group": rec["key"], "mean": float(rec["value"]),
                     "mean_seconds": None if pd.isna(cost) else float(cost)})
    return rows


# -- many runs -----------------------------------------------------------------------------------


def _label_runs(runs: list[RunResults], warned: set[Path] = frozenset()) -> dict[Path, str]:
    """Method label per run; runs sharing a label are told apart by their directory name, and a run
    whose official aggregation warns is marked (the warnings are listed under the runs)."""
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.method] = counts.get(r.method, 0) + 1
    return {r.path: display_method(r.method) + (f" @{r.path.name}" if counts[r.method] > 1 else "")
            + (" [NOT COMPARABLE: see warning]" if r.path in warned else "") for r in runs}


def compare(run_dirs: Iterable[str | Path], baseline: str = "frozen",
            reference: str | list[str] | None = None) -> tuple[str, pd.DataFrame]:
    """Markdown and a long DataFrame comparing runs per benchmark, with paired Δ and paper rows."""
    runs = [load_run(p) for p in run_dirs]
    if not runs:
        raise UserError("no run directories given")
    refs = [reference] if isinstance(reference, str) else list(reference or [])
    by_bench: dict[str, list[RunResults]] = {}
    for r in runs:
        by_bench.setdefault(r.bench, []).append(r)
    sections, frames = [], []
    for bench in sorted(by_bench):
        bench_refs = refs or ([DEFAULT_REFERENCE[bench]] if bench in DEFAULT_REFERENCE else [])
        paper = [row for name in bench_refs for row in _reference_rows(load_reference(name), name)]
        if refs:  # an explicitly named table of another benchmark goes to its own bench only
            paper = [row for row in paper if row["bench"] == bench]
        for title, group in _comparable_sets(by_bench[bench]):
            md, frame = _compare_bench(bench, group, baseline, paper, title)
            sections.append(md)
            frames.append(frame)
    for name in refs:  # a reference whose benchmark has no run is still printed
        ref = load_reference(name)
        if not set(ref["bench"]) & set(by_bench):
            md, frame = _compare_bench(str(ref["bench"].iloc[0]), [], baseline, _reference_rows(ref, name))
            sections.append(md)
            frames.append(frame)
    return "\n".join(sections + [STATS_NOTE, ""]), pd.concat(frames, ignore_index=True)


def _comparable_sets(runs: list[RunResults]) -> list[tuple[str, list[RunResults]]]:
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
    official = {r.path: official_aggregation(r.bench, r.records, _expected_ids(r)) for r in runs}
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
    lines += _comparison_markdown(bench, rows, paper, baseline if base is not None else None)
    officials = {labels[r.path]: o for r in runs if (o := official[r.path])}
    lines += _official_compare_md(bench, officials)
    frozen = next((r.records for r in runs if r.method == FROZEN), [])
    for r in runs:
        if verdicts := teacher_audit.verdict_rows(r.records, frozen, _audit_levels(r)):
            lines += _verdicts_md(bench, labels[r.path], verdicts)
    return "\n".join(lines), pd.DataFrame(rows + paper)


def _audit_levels(run: RunResults) -> dict[str, Callable[[dict[str, Any]], str]]:
    return {lvl: LEVELS[lvl] for lvl in _levels(run.records) if lvl in MAIN_LEVELS}


def _verdicts_md(bench: str, label: str, rows: list[dict[str, Any]]) -> list[str]:
    """A vlmteach run's teacher audit (harness.teacher_audit): acceptances and how its verdicts rank the videos.
    The loop's start is shown only beside a frozen run, whose videos it is read against."""
    start = any(row["n_start"] for row in rows)
    rankings = {"loss": "loss ~ score"}
    if any(row["goal_start"] is not None or row["goal_end"] is not None for row in rows):
        rankings["goal"] = "goal ~ goal"
    header = ["group", "n"] + (["n paired"] if start else []) + ["accepted", "score if accepted", "score otherwise"]
    for name in rankings.values():
        header += [f"{name}: start", "end"] if start else [f"{name}: end"]
    body = []
    for row in rows:
        cells = [row["group"], str(row["n"])] + ([str(row["n_start"])] if start else [])
        cells += [f"{row['n_accepted']} ({row['n_accepted'] / row['n']:.0%})", _fmt(row["score_accepted"]),
                  _fmt(row["score_rest"])]
        for key in rankings:
            cells += [_fmt(row[key + "_start"]), _fmt(row[key + "_end"])] if start else [_fmt(row[key + "_end"])]
        body.append(cells)
    return ([f"### {bench}: the teacher's verdicts in {label}", ""] + _md_table(header, body)
            + ["", f"- {teacher_audit.NOTE}", ""])


def _official_compare_md(bench: str, officials: dict[str, dict[str, Any]]) -> list[str]:
    """The official aggregation's headline scalars, one row per run (full detail is in each table.md)."""
    if not officials:
        return []
    keys = list(dict.fromkeys(k for o in officials.values() for k, v in o.items()
                              if isinstance(v, (int, float, str)) and not isinstance(v, bool)))
    body = [[label] + [_fmt(v) if isinstance(v := o.get(k), float) else "–" if v is None else str(v) for k in keys]
            for label, o in officials.items()]
    notes = list(dict.fromkeys(n for o in officials.values() for n in o.get("notes", [])))
    return ([f"### {bench}: official aggregation (benchmarks.{bench}.official_aggregate)", ""]
            + _md_table(["method"] + keys, body) + [""] + [f"- note: {n}" for n in notes] + ([""] if notes else []))


def _comparison_markdown(bench: str, rows: list[dict[str, Any]], paper: list[dict[str, Any]],
                         baseline: str | None) -> list[str]:
    """Main table (methods x overall/split/category) and detail tables (groups x methods)."""
    entries = rows + paper
    index = {(e["method"], e["level"], match_key(e["level"], e["group"])): e for e in entries}

    def lookup(method: str, level: str, group: str) -> dict[str, Any] | None:
        return index.get((method, level, match_key(level, group)))

    if rows:  # columns come from the runs
        groups = {lvl: sorted({e["group"] for e in rows if e["level"] == lvl}) for lvl in LEVELS}
    else:  # paper only: the paper table's own columns, in its order
        groups = {lvl: list(dict.fromkeys(e["group"] for e in paper if e["level"] == lvl)) for lvl in LEVELS}
    methods = list(dict.fromkeys(e["method"] for e in entries))
    columns = [(lvl, g) for lvl in MAIN_LEVELS for g in groups[lvl]]
    header = ["method"] + ["Overall" if lvl == "overall" else g for lvl, g in columns]
    if baseline is not None:
        header += [f"Δ vs {baseline} [95% CI]", "p", "p Holm", "n pairs"]
    header += ["s/inst", "steps"]
    judged = any(e.get("judge_tokens") is not None for e in rows)  # a judge that reports its tokens (RULER's API judge)
    header += ["judge tok/inst"] if judged else []
    overall_p = [(lookup(m, "overall", "all") or {}).get("p_value") for m in methods]
    holm_p = dict(zip(methods, stats.holm(overall_p)))
    body = []
    for method in methods:
        cells = [_cell(hit) if (hit := lookup(method, lvl, g)) else "–" for lvl, g in columns]
        overall = lookup(method, "overall", "all") or {}
        if baseline is not None:
            if overall.get("diff_mean") is not None:
                d = overall
                cells += [_diff_cell(d),
                          "–" if d["p_value"] is None else f"{d['p_value']:.3g}",
                          "–" if holm_p[method] is None else f"{holm_p[method]:.3g}", str(d["n_pairs"])]
            else:
                cells += ["–", "–", "–", "–"]
        cells += [_fmt_cost(overall.get("mean_seconds")), _fmt_cost(overall.get("mean_steps"))]
        cells += [_fmt_cost(overall.get("judge_tokens"))] if judged else []
        body.append([method] + cells)
    lines = _md_table(header, body) + [""]
    if baseline is not None:
        lines += _group_differences_md(bench, baseline, groups, lookup, [m for m in methods if m != baseline])

    for lvl in DETAIL_LEVELS:
        if not groups[lvl]:
            continue
        cols = [m for m in methods if any(lookup(m, lvl, g) for g in groups[lvl])]
        category = {e["group"]: e["category"] for e in rows if e["level"] == lvl and e.get("category")}
        detail = [[f"{g} ({category[g]})" if g in category else g]
                  + [_cell(hit) if (hit := lookup(m, lvl, g)) else "–" for m in cols] for g in groups[lvl]]
        lines += [f"### {bench}: per {lvl}", ""] + _md_table([lvl] + cols, detail) + [""]
    return lines


def _group_differences_md(bench: str, baseline: str, groups: dict[str, list[str]], lookup,
                          methods: list[str]) -> list[str]:
    """The paired difference against the baseline per split and category (the main table gives it overall):
    where a method gains, in domain or out of it. Rows without a pairing (the paper's) are left out."""
    keys = [(lvl, g) for lvl in MAIN_LEVELS if lvl != "overall" for g in groups[lvl]]
    cols = [m for m in methods if any((lookup(m, lvl, g) or {}).get("diff_mean") is not None for lvl, g in keys)]
    if not keys or not cols:
        return []

    def cell(hit: dict[str, Any] | None) -> str:
        return "–" if not hit or hit.get("diff_mean") is None else f"{_diff_cell(hit)} n={hit['n_pairs']}"

    body = [[g] + [cell(lookup(m, lvl, g)) for m in cols] for lvl, g in keys]
    return [f"### {bench}: Δ vs {baseline} per split and category", ""] + _md_table(["group"] + cols, body) + [""]
