"""The end-to-end report: per benchmark and method, seconds per instance (generation, scoring, total) and peak
GPU memory from the run records, the comparison tables (``harness.results.compare``), one line per instance
failure, and the out-of-memory probe's verdict. Written as ``e2e_<device>.md`` and ``.json`` (plus the log)."""

from __future__ import annotations

import json
import platform
import shutil
import statistics
from pathlib import Path
from typing import Any

from benchmarks.e2e.fixtures import N_RULER, N_VBVR

EXPECTED = {"ruler": N_RULER, "vbvr": N_VBVR}
PROBE_RUN = "oom-probe"


def hardware() -> dict[str, Any]:
    import diffusers
    import torch
    import transformers

    info = {"torch": torch.__version__, "diffusers": diffusers.__version__, "transformers": transformers.__version__,
            "python": platform.python_version()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info |= {"gpu": props.name, "gpu_memory_gib": round(props.total_memory / 2**30, 1), "cuda": torch.version.cuda}
    else:
        info["cpu"] = platform.processor() or platform.machine()
    return info


def device_slug(hw: dict[str, Any], tiny: bool) -> str:
    """``h100_80gb_hbm3``, ``tiny_cpu``: the report files' suffix."""
    return ("tiny_" if tiny else "") + "".join(c if c.isalnum() else "_" for c in hw.get("gpu", "cpu")).strip("_").lower()


def _mean(values: list[float]) -> float | None:
    return statistics.mean(values) if values else None


def run_stats(run_dir: Path) -> dict[str, Any]:
    from harness.rundir import RunDir

    run = RunDir(run_dir)
    records = run.latest_records()
    planned = [m["plan"]["instances"] for m in run.manifests() if m.get("plan")]
    ok = [r for r in records.values() if r["status"] == "ok"]
    timing = lambda key, rows: [r["timings"][key] for r in rows if key in r.get("timings", {})]  # noqa: E731
    peaks = timing("peak_gpu_mem_gib", list(records.values()))
    return {
        "run_dir": str(run_dir), "planned": planned[0] if planned else None, "instances": len(records), "ok": len(ok),
        "generate_s": _mean(timing("generate_s", ok)), "score_s": _mean(timing("score_s", ok)),
        "total_s": _mean(timing("total_s", ok)), "peak_gpu_mem_gib": max(peaks) if peaks else None,
        "steps": _mean([r.get("steps", 0) for r in ok]),
        "failures": [{"instance": iid, "status": r["status"], "stage": r.get("error_stage"),
                      "error": (r.get("error") or "").splitlines()[0][:300]}
                     for iid, r in sorted(records.items()) if r["status"] != "ok"],
        "records": {iid: {k: r.get(k) for k in ("status", "error_stage", "error", "timings")}
                    for iid, r in sorted(records.items())},
    }


def find_runs(runs_root: Path) -> dict[tuple[str, str], Path]:
    """(bench, method) -> its run directory (the probe's excluded); the newest where there are several."""
    found: dict[tuple[str, str], Path] = {}
    for run in sorted(runs_root.glob("*/*/*"), key=lambda p: p.stat().st_mtime):
        if run.is_dir() and run.name != PROBE_RUN and any(run.glob("records*.jsonl")):
            found[(run.parts[-3], run.parts[-2])] = run
    return found


def probe_verdict(runs_root: Path, settings: dict[str, Any]) -> dict[str, Any]:
    run = runs_root / "vbvr" / "frozen" / PROBE_RUN
    if not any(run.glob("records*.jsonl")):
        return {"ok": False, "why": "the probe did not run (or recorded nothing)"}
    stats = run_stats(run)
    oversized = stats["records"].get(settings["oom_instance"])
    others = [r for iid, r in stats["records"].items() if iid != settings["oom_instance"]]
    want = "OutOfMemoryError" if not settings["tiny"] else ""
    ok = (oversized is not None and oversized["status"] == "error" and oversized["error_stage"] == "generate"
          and want in (oversized["error"] or "") and others and all(r["status"] == "ok" for r in others))
    return {"ok": bool(ok), "run_dir": str(run), "oversized": oversized, "others_ok": sum(r["status"] == "ok" for r in others),
            "others": len(others), "expects": settings["probe_expects"]}


def cell(x: float | None, fmt: str = ".2f") -> str:
    """A table cell: ``x`` formatted, or a dash where there is no value."""
    return "–" if x is None else format(x, fmt)


def markdown(report: dict[str, Any]) -> str:
    hw, s = report["hardware"], report["settings"]
    device = hw.get("gpu") or f"CPU ({hw.get('cpu')})"
    lines = [f"# End-to-end run ({'tiny, ' if s['tiny'] else ''}{device})", "",
             f"torch {hw['torch']}, diffusers {hw['diffusers']}, transformers {hw['transformers']}"
             + (f", CUDA {hw['cuda']}, {hw['gpu_memory_gib']} GiB" if "gpu" in hw else "") + ".", "",
             "`python -m harness.eval` with the shipped configs (`student=fastwan22_ti2v_5b teacher=qwen3_vl_4b`), "
             f"random-weight checkpoints in the real layouts ({'tiny widths' if s['tiny'] else 'real sizes'}; UMT5 "
             "at its real width with 1 of 24 layers), the stub judge on 127.0.0.1 for RULER and the official "
             f"scorers for VBVR. Sizes: {json.dumps(s['sizes'])}. vlmteach: {s['vlmteach_steps']} steps, early stop off. "
             f"Overrides besides paths: `{' '.join(o for o in s['model_overrides'] if '.path=' not in o and '=' in o and not o.startswith(('student=', 'teacher=')))}`"
             " (teacher reply caps: a random teacher never ends a reply).", "",
             f"Wall time of this call: {s['wall_s']} s; checkpoints "
             + ("reused" if report["checkpoints"].get("reused") else f"written in {report['checkpoints'].get('wall_s')} s")
             + f" ({report['checkpoints'].get('bytes', 0) / 2**30:.1f} GiB).", "",
             "## Seconds per instance and peak GPU memory", "",
             "| bench | method | ok / expected | generate s | score s | total s | peak GPU GiB (max) | steps |",
             "|---|---|---|---|---|---|---|---|"]
    for row in report["rows"]:
        lines.append(f"| {row['bench']} | {row['method']} | {row['ok']} / {row['expected']} | {cell(row['generate_s'])} | "
                     f"{cell(row['score_s'])} | {cell(row['total_s'])} | {cell(row['peak_gpu_mem_gib'], '.1f')} | "
                     f"{cell(row['steps'], '.0f')} |")
    lines += ["", "Means over ok instances; model loading and compilation are outside these numbers (the "
              "process wall times below include them).", "", "## Commands", ""]
    for c in report["commands"]:
        state = c.get("skipped") or c.get("cut") or f"rc {c['rc']}"
        lines.append(f"- {c['bench']} {','.join(c['methods'])}{' (probe)' if c.get('probe') else ''}: {state}, "
                     f"{c['wall_s']} s")
    if report["not_run"]:
        lines += ["", f"Not run (cut to fit the time budget or not asked for): {', '.join(report['not_run'])}."]
    p = report["probe"]
    lines += ["", "## Out-of-memory probe", ""]
    if p.get("asked") is False:
        lines.append("Not asked for in this call (--no-probe).")
    else:
        lines += [f"Oversized instance: {s['oom_instance']}.",
                  f"{'PASS' if p['ok'] else 'FAIL'}: expects {s['probe_expects']} on the oversized instance, recorded as "
                  f"its error, and the run going on ({p.get('others_ok', 0)} / {p.get('others', 0)} other instances ok)."]
    if p.get("oversized"):
        o = p["oversized"]
        lines.append(f"- oversized instance: {o['status']} at {o['error_stage']}: {(o['error'] or '')[:300]} "
                     f"(peak {cell(o['timings'].get('peak_gpu_mem_gib'), '.1f')} GiB)")
    elif p.get("why"):
        lines.append(f"- {p['why']}")
    lines += ["", "## Instance failures", ""]
    failures = [f"- {r['bench']} {r['method']} {f['instance']}: {f['status']} at {f['stage']}: {f['error']}"
                for r in report["rows"] for f in r["failures"]]
    lines += failures or ["none"]
    for bench, table in report["tables"].items():
        lines += ["", f"## Comparison: {bench}", "", table]
    return "\n".join(lines) + "\n"


def write(out: Path, *, runs_root: Path, commands: list[dict], checkpoints: dict, settings: dict, log: Path) -> bool:
    from harness.results.compare import compare

    found = find_runs(runs_root) if runs_root.is_dir() else {}
    # An earlier call on the same machine (the packages need two calls' carry) reports beside this one.
    earlier = [b for b in EXPECTED if b not in settings["benches"] and any((b, m) in found for m in settings["methods"])]
    rows, tables = [], {}
    for bench in [*settings["benches"], *earlier]:
        for method in settings["methods"]:
            run = found.get((bench, method))
            if run is None:
                continue
            stats = run_stats(run)
            # The run's own plan: an earlier call may have run this benchmark with another --limit.
            expected = stats["planned"] or min(EXPECTED[bench], settings.get("limit") or EXPECTED[bench])
            rows.append({"bench": bench, "method": method, "expected": expected,
                         **{k: v for k, v in stats.items() if k != "records"}})
        run_dirs = [found[(bench, m)] for m in settings["methods"] if (bench, m) in found]
        if run_dirs:
            try:
                tables[bench], _ = compare(run_dirs, baseline="frozen")
            except Exception as exc:  # a table that cannot be made is reported, not hidden
                tables[bench] = f"(no table: {type(exc).__name__}: {exc})"
    done = {(r["bench"], r["method"]) for r in rows}
    not_run = [f"{b}/{m}" for b in [*settings["benches"], *earlier] for m in settings["methods"] if (b, m) not in done]
    probe = probe_verdict(runs_root, settings) if any(c.get("probe") for c in commands) else {"ok": True, "asked": False}
    report = {"hardware": hardware(), "settings": settings, "checkpoints": {k: v for k, v in checkpoints.items()
                                                                             if k != "configs"},
              "rows": rows, "not_run": not_run, "probe": probe, "tables": tables,
              "commands": [{k: v for k, v in c.items() if k != "argv"} | {"argv": " ".join(c["argv"])} for c in commands]}
    slug = device_slug(report["hardware"], settings["tiny"])
    out.mkdir(parents=True, exist_ok=True)
    (out / f"e2e_{slug}.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    (out / f"e2e_{slug}.md").write_text(markdown(report))
    if log.is_file():
        shutil.copyfile(log, out / f"e2e_{slug}_log.txt")
    complete = all(r["ok"] == r["expected"] for r in rows) and not not_run and probe["ok"]
    print(markdown(report))
    print(f"[e2e] report: {out / f'e2e_{slug}.md'} ({'complete' if complete else 'INCOMPLETE'})")
    return complete
