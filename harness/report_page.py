"""The report's HTML (harness.report): one self-contained page, its style and its small scripts inline."""

from __future__ import annotations

import datetime
import math
from html import escape
from typing import Any

from harness.report import Cell, PreviewStats, Section, judge_labels, loop_log
from harness.report_svg import paired_differences, step_curve
from harness.video import PREVIEW_CRF

STYLE = """
body { font: 13px/1.4 system-ui, sans-serif; margin: 16px; color: #222; }
h1 { font-size: 20px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ddd; padding: 4px 6px; vertical-align: top; text-align: left; }
table.summary td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.instances td.inst { min-width: 150px; }
video { width: 224px; height: auto; image-rendering: pixelated; background: #000; display: block; }
.placeholder { width: 224px; height: 126px;
  background: repeating-linear-gradient(45deg, #f3f3f3, #f3f3f3 8px, #e8e8e8 8px, #e8e8e8 16px);
  display: flex; align-items: center; justify-content: center; text-align: center; font-size: 11px; color: #933;
  padding: 4px; box-sizing: border-box; overflow: hidden; }
.warning { color: #c62828; font-weight: 600; }
.note { color: #933; font-size: 11px; max-width: 224px; overflow-wrap: anywhere; }
.score { font-weight: 600; } .pos { color: #1a7f37; } .neg { color: #c62828; }
.labels { margin: 2px 0; padding-left: 16px; font-size: 11px; }
.Good { color: #1a7f37; } .Medium { color: #a36a00; } .Poor { color: #c62828; }
details { font-size: 11px; max-width: 260px; } summary { cursor: pointer; color: #555; }
.sorters button { margin: 0 4px 6px 0; }
.muted { color: #777; font-size: 11px; }
#video-check { display: none; }
"""

# Sorting: each instance row carries data-diff<k> (the paired difference of column k); rows without one go last.
SORT_SCRIPT = """
function sortRows(table, key, dir) {
  const body = table.tBodies[0];
  const value = (tr) => { const v = tr.dataset[key]; return v === undefined || v === '' ? NaN : parseFloat(v); };
  const rows = Array.from(body.rows);
  rows.sort((a, b) => {
    if (key === 'id') return dir * a.dataset.id.localeCompare(b.dataset.id);
    const x = value(a), y = value(b);
    if (isNaN(x) && isNaN(y)) return a.dataset.id.localeCompare(b.dataset.id);
    if (isNaN(x)) return 1; if (isNaN(y)) return -1;
    return dir * (x - y);
  });
  rows.forEach((tr) => body.appendChild(tr));
}
document.querySelectorAll('.sorters button').forEach((button) => button.addEventListener('click', () => {
  sortRows(document.getElementById(button.dataset.table), button.dataset.key, parseInt(button.dataset.dir));
}));
// ?sort=diff1,-1 sorts every section's table on load (a link to a sorted page)
const sortParam = new URLSearchParams(location.search).get('sort');
if (sortParam) {
  const [key, dir] = sortParam.split(',');
  document.querySelectorAll('table.instances').forEach((t) => sortRows(t, key, parseInt(dir || '1')));
}
"""

# ?check-videos: play every video at once, muted, and keep what each decoded in #video-check (JSON), which says
# data-state="done" once each has played (its clock moved past 0 with a decoded size) or failed.
CHECK_SCRIPT = """
if (new URLSearchParams(location.search).has('check-videos')) {
  const out = document.getElementById('video-check');
  const videos = Array.from(document.querySelectorAll('video'));
  const results = videos.map((video) => ({src: video.getAttribute('src'), outcome: 'pending'}));
  const show = () => {
    out.textContent = JSON.stringify(results);
    if (results.every((r) => r.outcome !== 'pending')) out.dataset.state = 'done';
  };
  videos.forEach((video, i) => {
    const settle = (outcome) => {
      if (results[i].outcome !== 'pending') return;
      results[i] = {src: results[i].src, outcome, readyState: video.readyState, duration: video.duration,
                    videoWidth: video.videoWidth, videoHeight: video.videoHeight, currentTime: video.currentTime,
                    error: video.error ? video.error.code : null};
      video.pause();
      show();
    };
    video.muted = true;
    video.addEventListener('error', () => settle('error'));
    video.addEventListener('timeupdate', () => {
      if (video.currentTime > 0 && video.videoWidth > 0) settle('played');
    });
    video.play().catch((e) => settle('play() refused: ' + e.name));
  });
  show();
}
"""


def _fmt(x: float | None, sign: str = "") -> str:
    if x is None or not math.isfinite(x):
        return "–"
    return f"{x:{sign}.3f}" if abs(x) < 2 else f"{x:{sign}.1f}"


def _signed(x: float | None) -> str:
    css = "" if x is None or x == 0 else "pos" if x > 0 else "neg"
    return f'<span class="{css}">{_fmt(x, "+")}</span>'


def render(sections: list[Section], stats: PreviewStats) -> str:
    made = f", {stats.made} made now from the scored videos" if stats.made else ""
    failed = f", {stats.failed} could not be made (see their cells)" if stats.failed else ""
    head = (f"<h1>vlmteach harness report</h1><p class=\"muted\">{datetime.datetime.now():%Y-%m-%d %H:%M} · "
            f"{len(sections)} benchmark(s). Videos are browser previews (H.264 High 4:2:0, crf {PREVIEW_CRF}) of the "
            f"lossless files the scorers read, linked relative to this page{made}{failed}.</p>")
    body = "".join(_section(i, s) for i, s in enumerate(sections))
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>vlmteach harness report</title>"
            f"<style>{STYLE}</style></head><body>{head}{body}<pre id=\"video-check\" data-state=\"pending\"></pre>"
            f"<script>{SORT_SCRIPT}{CHECK_SCRIPT}</script></body></html>\n")


def _section(index: int, section: Section) -> str:
    table_id = f"instances-{index}"
    compared = [c for c in section.columns if not c.baseline]
    baseline = (f"baseline: <b>{escape(section.baseline)}</b>" if section.baseline
                else "no baseline run among these (no paired differences)")
    parts = [f"<h2 id=\"bench-{escape(section.bench)}-{index}\">{escape(section.bench + section.title)}</h2>"
             f"<p>{baseline}; {len(section.instances)} instances.</p>", _summary_table(section)]
    if section.baseline and compared:
        parts.append("<h3>Paired differences against the baseline, per category</h3>" + _summary_plot(section))
    sorters = ['<button data-table="{t}" data-key="id" data-dir="1">instance</button>'.format(t=table_id)]
    for k, column in enumerate(section.columns):
        if not column.baseline and section.baseline:
            for arrow, direction in (("↓", -1), ("↑", 1)):
                sorters.append(f'<button data-table="{table_id}" data-key="diff{k}" data-dir="{direction}">'
                               f'Δ {escape(column.label)} {arrow}</button>')
    parts.append(f"<h3>Instances</h3><div class=\"sorters\">sort by: {''.join(sorters)}</div>")
    header = "".join(f"<th>{escape(c.label)}{' (baseline)' if c.baseline else ''}</th>" for c in section.columns)
    rows = []
    for inst in section.instances:
        iid = inst["instance_id"]
        data = "".join(f' data-diff{k}="{"" if (d := section.cells[(iid, c.label)].diff) is None else repr(d)}"'
                       for k, c in enumerate(section.columns))
        cells = "".join(_cell(section.cells[(iid, c.label)]) for c in section.columns)
        rows.append(f'<tr data-id="{escape(iid)}"{data}><td class="inst"><b>{escape(iid)}</b><br>'
                    f'<span class="muted">{escape(inst["task"])} · {escape(inst["category"])} · '
                    f'{escape(inst["split"])}</span></td>{cells}</tr>')
    parts.append(f'<table class="instances" id="{table_id}"><thead><tr><th>instance</th>{header}</tr></thead>'
                 f"<tbody>{''.join(rows)}</tbody></table>")
    return "".join(parts)


def _summary_table(section: Section) -> str:
    body = []
    for column in section.columns:
        overall = next((r for r in column.rows if r["level"] == "overall"), {})
        diff = ("baseline" if column.baseline else
                f"{_signed(overall.get('diff_mean'))} [{_fmt(overall.get('diff_ci_low'), '+')}, "
                f"{_fmt(overall.get('diff_ci_high'), '+')}] n={overall.get('n_pairs', 0)}, "
                f"p={_fmt(overall.get('p_value'))}"
                if "diff_mean" in overall else "–")
        body.append(f"<tr><td>{escape(column.label)}</td><td class=\"num\">{_fmt(overall.get('mean'))} "
                    f"[{_fmt(overall.get('ci_low'))}, {_fmt(overall.get('ci_high'))}]</td>"
                    f"<td class=\"num\">{overall.get('n', 0)}</td><td class=\"num\">{overall.get('n_error', 0)}</td>"
                    f"<td class=\"num\">{diff}</td><td>{escape(column.run.flag)}</td>"
                    f"<td class=\"muted\">{escape(str(column.run.path))}</td></tr>")
    warned: dict[str, list[str]] = {}
    for column in section.columns:
        for warning in column.warnings:
            warned.setdefault(warning, []).append(column.label)
    warnings = "".join(f'<p class="warning">WARNING ({escape(", ".join(labels))}): {escape(w)}</p>'
                       for w, labels in warned.items())
    return (warnings + "<table class=\"summary\"><thead><tr><th>method</th><th>mean [95% CI]</th><th>n ok</th>"
            "<th>errors</th>"
            "<th>Δ vs baseline [95% CI], paired</th><th>run</th><th>directory</th></tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>"
            "<p class=\"muted\">CIs: the harness's bootstrap (harness.stats, tasks resampled within categories); "
            "p: Wilcoxon signed-rank on the paired instances. python -m harness.table gives the full tables.</p>")


def _summary_plot(section: Section) -> str:
    compared = [c for c in section.columns if not c.baseline]
    categories = ["all"] + sorted({inst["category"] for inst in section.instances})
    dots: dict[tuple[str, str], list[float]] = {}
    for inst in section.instances:
        for column in compared:
            diff = section.cells[(inst["instance_id"], column.label)].diff
            if diff is not None:
                for category in ("all", inst["category"]):
                    dots.setdefault((category, column.label), []).append(diff)
    means: dict[tuple[str, str], tuple[Any, Any, Any]] = {}
    for column in compared:
        for row in column.rows:
            if row["level"] in ("overall", "category") and "diff_mean" in row:
                category = "all" if row["level"] == "overall" else row["group"]
                means[(category, column.label)] = (row["diff_mean"], row["diff_ci_low"], row["diff_ci_high"])
    return (paired_differences(categories, [c.label for c in compared], dots, means)
            + "<p class=\"muted\">Dots: one instance's difference (ok in both runs); bar: the mean; whisker: "
            "its 95% bootstrap CI.</p>")


def _cell(cell: Cell) -> str:
    if cell.src:
        media = f'<video src="{escape(cell.src)}" controls muted loop playsinline preload="metadata"></video>'
    else:
        media = f'<div class="placeholder">{escape(cell.note or cell.status)}</div>'
    lines = [media]
    if cell.src and cell.note:
        lines.append(f'<div class="note">{escape(cell.note)}</div>')
    if cell.score is not None:
        diff = f" · Δ {_signed(cell.diff)}" if cell.diff is not None else ""
        lines.append(f'<div><span class="score">{_fmt(cell.score)}</span>{diff}</div>')
    elif cell.src and not cell.note:
        lines.append(f'<div class="muted">{escape(cell.status)}</div>')
    record = cell.record
    scores = record.get("scores") if isinstance(record.get("scores"), dict) else {}
    if scores and len(scores) <= 8:
        lines.append('<div class="muted">' + " · ".join(f"{escape(str(k))} {_short(v)}" for k, v in scores.items())
                     + "</div>")
    if labels := judge_labels(record):
        items = "".join(f'<li>{escape(metric)}: <span class="{escape(label)}">{escape(label)}</span></li>'
                        for metric, label in labels)
        lines.append(f'<div class="muted">judge</div><ul class="labels">{items}</ul>')
    if log := loop_log(record):
        lines.append(_loop(log))
    return f"<td>{''.join(lines)}</td>"


def _loop(log: dict[str, Any]) -> str:
    accepted = " · accepted (stopped early)" if log["stopped_early"] else ""
    questions = "".join(f"<li>{f'<b>{escape(role)}</b>: ' if role else ''}{escape(q)}</li>"
                        for role, q in log["questions"])
    source = f" ({escape(str(log['source']))})" if log.get("source") else ""
    return (step_curve(log["losses"], log["p_yes"])
            + f'<div class="muted">{len(log["losses"])} evaluations{accepted}</div>'
            + (f"<details><summary>teacher's questions{source}: {len(log['questions'])}</summary><ol>{questions}</ol>"
               "</details>" if log["questions"] else ""))


def _short(value: Any) -> str:
    try:
        return f"{float(value):.3g}"
    except (TypeError, ValueError):
        return escape(str(value))

