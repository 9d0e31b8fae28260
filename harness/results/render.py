"""Markdown: number formats, table cells, and the sections of a run's table.md and of a comparison."""

from __future__ import annotations

from typing import Any

from harness import stats
from harness.results.benchmark import official_warnings
from harness.results.reference import match_key
from harness.results.rows import DETAIL_LEVELS, LEVELS, MAIN_LEVELS

STATS_NOTE = (
    f"Cells: mean [95% CI] n. CI: percentile bootstrap, {stats.N_RESAMPLES} resamples (seed {stats.SEED}), "
    "tasks resampled within categories (a one-task category resamples its instances; a task row its instances). "
    "Errored and unscored instances are excluded from means and counted as err. "
    "Δ: mean paired difference against the baseline on instances ok in both, same bootstrap; "
    "p: two-sided Wilcoxon signed-rank on the paired instances (treats instances as independent); "
    "p Holm: the same, Holm-adjusted over the methods compared in the table. "
    "(oracle): Pass@k selects with the benchmark's own scorer, an upper bound rather than a deployable method. "
    "work/inst: the mean of the records' steps, each method's own unit of work (harness.types.MethodOutput.steps: "
    "vlmteach its LoRA updates, pass@k and best-of-n the candidates generated, prompt rewriting and VideoTPO the VLM "
    "calls plus the generations, frozen 0), to compare runs of one method rather than methods."
)


def fmt(x: float | None, sign: str = "") -> str:
    """3 decimals for scores in [0, 1] (VBVR, micro), 1 for percentages (RULER)."""
    if x is None or x != x:
        return "–"
    return f"{x:{sign}.3f}" if abs(x) < 2 else f"{x:{sign}.1f}"


def fmt_cost(x: float | None) -> str:
    return "–" if x is None or x != x else f"{x:.1f}"


def _diff_cell(row: dict[str, Any]) -> str:
    """A row's paired difference against the baseline: mean [95% CI]."""
    return f"{fmt(row['diff_mean'], '+')} [{fmt(row['diff_ci_low'], '+')}, {fmt(row['diff_ci_high'], '+')}]"


def _cell(row: dict[str, Any]) -> str:
    if row.get("source") == "paper":
        return fmt(row["mean"])
    text = f"{fmt(row['mean'])} [{fmt(row['ci_low'])}, {fmt(row['ci_high'])}] n={row['n']}"
    if row.get("n_expected") is not None and row["n_expected"] != row["n"]:
        text += f"/{row['n_expected']}"
    if row["n_error"]:
        text += f", {row['n_error']} err"
    return text


def md_table(header: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in body]


def warnings_md(warnings: list[str]) -> list[str]:
    return [f"**WARNING: {w}**" for w in warnings] + ([""] if warnings else [])


def _flatten(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(obj, dict):
        return [kv for k in obj for kv in _flatten(obj[k], f"{prefix}.{k}" if prefix else str(k))]
    return [(prefix, obj)]


def official_md(official: dict[str, Any] | None, label: str) -> list[str]:
    """One run's official aggregation in full, headed by the hook's name (``label``)."""
    if official is None:
        return []
    lines = [f"### Official aggregation ({label})", ""]
    notes = official.get("notes", []) if isinstance(official, dict) else []
    lines += warnings_md(official_warnings(official))
    for key, value in _flatten({k: v for k, v in official.items() if k not in ("notes", "warnings")}):
        lines.append(f"- {key}: {fmt(value) if isinstance(value, float) else value}")
    lines += [f"- note: {n}" for n in notes]
    return lines + [""]


def official_compare_md(bench: str, label: str, officials: dict[str, dict[str, Any]]) -> list[str]:
    """The official aggregation's headline scalars, one row per run (full detail is in each table.md)."""
    if not officials:
        return []
    keys = list(dict.fromkeys(k for o in officials.values() for k, v in o.items()
                              if isinstance(v, (int, float, str)) and not isinstance(v, bool)))
    body = [[method] + [fmt(v) if isinstance(v := o.get(k), float) else "–" if v is None else str(v) for k in keys]
            for method, o in officials.items()]
    notes = list(dict.fromkeys(n for o in officials.values() for n in o.get("notes", [])))
    return ([f"### {bench}: official aggregation ({label})", ""]
            + md_table(["method"] + keys, body) + [""] + [f"- note: {n}" for n in notes] + ([""] if notes else []))


def comparison_markdown(bench: str, rows: list[dict[str, Any]], paper: list[dict[str, Any]],
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
    header += ["s/inst", "work/inst"]
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
        cells += [fmt_cost(overall.get("mean_seconds")), fmt_cost(overall.get("mean_steps"))]
        cells += [fmt_cost(overall.get("judge_tokens"))] if judged else []
        body.append([method] + cells)
    lines = md_table(header, body) + [""]
    if baseline is not None:
        lines += _group_differences_md(bench, baseline, groups, lookup, [m for m in methods if m != baseline])

    for lvl in DETAIL_LEVELS:
        if not groups[lvl]:
            continue
        cols = [m for m in methods if any(lookup(m, lvl, g) for g in groups[lvl])]
        category = {e["group"]: e["category"] for e in rows if e["level"] == lvl and e.get("category")}
        detail = [[f"{g} ({category[g]})" if g in category else g]
                  + [_cell(hit) if (hit := lookup(m, lvl, g)) else "–" for m in cols] for g in groups[lvl]]
        lines += [f"### {bench}: per {lvl}", ""] + md_table([lvl] + cols, detail) + [""]
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
    return [f"### {bench}: Δ vs {baseline} per split and category", ""] + md_table(["group"] + cols, body) + [""]
