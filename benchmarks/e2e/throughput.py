"""vlmteach's instances per hour through the product (issue 35): one ``python -m harness.eval`` run per batch size.

    python -m benchmarks.e2e.throughput [--tiny] [--instances 16] [--batch 1,4] [--steps 16] [--budget-s 560]
                                        [--work build/e2e] [--out DIR] [--extra-overrides KEY=VALUE ...]
                                        [--batched-overrides KEY=VALUE ...]

The checkpoints, overrides, sizes and stub judge are the end-to-end run's (``benchmarks.e2e.run``); the fixture
is RULER-shaped, ``--instances`` text-to-video records in the released format, so every instance has one
generation shape and ``method.batch_instances=k`` forms full batches. Per k: ``method=vlmteach
method.num_steps=N method.early_stop=false method.batch_instances=k bench=ruler limit=n run_name=throughput-b{k}``
(early stop off: every instance costs the same). The report (``throughput_<device>.md``/``.json`` in ``--out``,
default ``$OUT``, else results/perf/) is read from the runs' records: generation seconds (the sum of the records'
``generate_s``; a batch's ``batch_s`` is split evenly among its instances), instances per hour (also without the
run's first batch, which carries compilation and warm-up), the median step's seconds from the traces (a batched
step is the batch's), peak GPU memory, where an instance's seconds go, the ratio to k=1 (the issue's target:
>= 1.5x) and, on an H200, to the issue's arithmetic bound. The runs start afresh on each call (their records are
the measurement). Exit code 0: every run has all its instances ok.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

from benchmarks.e2e import fixtures
from benchmarks.e2e.report import cell, device_slug, hardware
from benchmarks.e2e.run import (ROOT, SIZES, Clock, ensure_checkpoints, judge_overrides, model_overrides, run_logged,
                                start_judge)
from benchmarks.perf_bound import BOUND_GPU, BOUND_S_PER_INSTANCE, BOUND_S_PER_STEP, BOUND_STEPS, on_bound_gpu
from benchmarks.ruler.fixtures import write_tiny_release

TARGET_SPEEDUP = 1.5  # issue 35, goal 2: instances per hour of the batched path over k=1
# Where an instance's generation goes (vlmteach's record timings): the loop is shared by a batch, the rest is not.
PHASES = ("synthesis_s", "encode_s", "optimise_s", "final_eval_s", "final_s")
# The fixture's templates: the end-to-end records without a first frame (text-to-video), one generation shape.
T2V_TEMPLATES = [r for r in fixtures.RULER_RECORDS if not r["input_image_path"]]


def throughput_records(n: int) -> list[dict[str, Any]]:
    """``n`` text-to-video RULER records: the templates in turn, each with its own index and prompt."""
    templates = [T2V_TEMPLATES[i % len(T2V_TEMPLATES)] for i in range(n)]
    return [{**t, "index": i, "prompt": f"{t['prompt']} Take {i}."} for i, t in enumerate(templates)]


def run_name(k: int) -> str:
    return f"throughput-b{k}"


def eval_argv(k: int, *, steps: int, instances: int, common: list[str]) -> list[str]:
    return [sys.executable, "-m", "harness.eval", "method=vlmteach", f"method.num_steps={steps}",
            "method.early_stop=false", f"method.batch_instances={k}", f"limit={instances}", f"run_name={run_name(k)}",
            *common]


def step_seconds(records: list[dict[str, Any]]) -> list[float]:
    """Every timed step of the records' traces: a batch's step once per member (full batches: the same median)."""
    return [s["seconds"] for r in records for s in (r.get("trace") or {}).get("per_step", []) if s.get("seconds") is not None]


def first_group(data: Path, instances: int, k: int) -> set[str]:
    """The ids of the run's first batch (the runner's plan: RULER's instances by id, cut by
    ``harness.runner.generation_groups``): its seconds carry the process's compilation and warm-up."""
    from benchmarks.ruler.benchmark import RulerBenchmark
    from harness.runner import generation_groups

    planned = RulerBenchmark(data_dir=str(data), hub_id=None).instances()[:instances]
    return {i.id for i in next(generation_groups(planned, k))}


def run_row(run_dir: Path, k: int, expected: int, warmup: set[str]) -> dict[str, Any]:
    """One batch size's row, from its run's latest records; ``steady_*`` leave out the ``warmup`` batch."""
    from harness.rundir import RunDir

    records = list(RunDir(run_dir).latest_records().values()) if run_dir.is_dir() else []
    ok = [r for r in records if r["status"] == "ok"]
    generation_s = sum(r["timings"].get("generate_s", 0.0) for r in records)
    later = [r for r in records if r["instance_id"] not in warmup]
    later_ok, later_s = sum(r["status"] == "ok" for r in later), sum(r["timings"].get("generate_s", 0.0) for r in later)
    steps = step_seconds(ok)
    peaks = [r["timings"]["peak_gpu_mem_gib"] for r in records if "peak_gpu_mem_gib" in r.get("timings", {})]
    return {"k": k, "run_dir": str(run_dir), "expected": expected, "instances": len(records), "ok": len(ok),
            "batched_records": sum("batch_s" in r.get("timings", {}) for r in records),
            "generation_s": generation_s,
            "instances_per_hour": len(ok) * 3600 / generation_s if generation_s > 0 else None,
            "s_per_instance": generation_s / len(ok) if ok else None,
            "steady_ok": later_ok, "steady_generation_s": later_s,
            "steady_instances_per_hour": later_ok * 3600 / later_s if later_s > 0 else None,
            "median_step_s": statistics.median(steps) if steps else None,
            "peak_gpu_mem_gib": max(peaks) if peaks else None,
            "phases_s": {p: statistics.mean(r["timings"][p] for r in ok) if ok and all(p in r["timings"] for r in ok)
                         else None for p in PHASES}}


def add_ratios(rows: list[dict[str, Any]], gpu: str | None, steps: int) -> None:
    """Per row: instances per hour over k=1's, and (on the bound's GPU) seconds over the arithmetic bound."""
    naive = next((r["instances_per_hour"] for r in rows if r["k"] == 1), None)
    steady_naive = next((r.get("steady_instances_per_hour") for r in rows if r["k"] == 1), None)
    bound = on_bound_gpu(gpu)
    for row in rows:
        row["vs_k1"] = row["instances_per_hour"] / naive if naive and row["instances_per_hour"] else None
        steady = row.get("steady_instances_per_hour")
        row["steady_vs_k1"] = steady / steady_naive if steady_naive and steady else None
        # A batch's step serves k instances: its per-instance share is what the per-step bound counts.
        row["vs_step_bound"] = (row["median_step_s"] / row["k"] / BOUND_S_PER_STEP
                                if bound and row["median_step_s"] else None)
        row["vs_instance_bound"] = (row["s_per_instance"] / BOUND_S_PER_INSTANCE
                                    if bound and steps == BOUND_STEPS and row["s_per_instance"] else None)


def bound_note(gpu: str | None, steps: int) -> str:
    if not on_bound_gpu(gpu):
        return f"bound given for {BOUND_GPU}: no ratio on {gpu or 'a CPU'}"
    if steps != BOUND_STEPS:
        return f"per-instance bound given for {BOUND_STEPS} steps: only the per-step ratio at {steps}"
    return f"ratio to {BOUND_S_PER_INSTANCE} s per instance and {BOUND_S_PER_STEP} s per instance-step"


def markdown(report: dict[str, Any]) -> str:
    hw, s = report["hardware"], report["settings"]
    gpu = hw.get("gpu")
    lines = [f"# vlmteach throughput ({'tiny, ' if s['tiny'] else ''}{gpu or 'CPU (' + str(hw.get('cpu')) + ')'})", "",
             f"{s['instances']} text-to-video RULER-format instances of one shape ({' '.join(s['sizes'])}), "
             f"{s['steps']} steps each, early stop off, through `python -m harness.eval` with the end-to-end run's "
             f"overrides{' and ' + ' '.join(s['extra_overrides']) if s['extra_overrides'] else ''}"
             f"{'; for k > 1 also ' + ' '.join(s['batched_overrides']) if s.get('batched_overrides') else ''}. "
             f"Arithmetic bound (issue 35, one {BOUND_GPU}): {BOUND_S_PER_STEP} s per step, {BOUND_S_PER_INSTANCE} s "
             f"per {BOUND_STEPS}-step instance; here: {bound_note(gpu, s['steps'])}.", "",
             "| k | ok / expected | generation s | instances / h | after the first batch: instances / h (n) | "
             f"median step s | peak GPU GiB | vs k=1 (target >= {TARGET_SPEEDUP}x) | after the first batch: vs k=1 | "
             "s/instance vs bound | step/k vs bound | process s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        lines.append(f"| {r['k']} | {r['ok']} / {r['expected']} | {cell(r['generation_s'])} | "
                     f"{cell(r['instances_per_hour'], '.1f')} | "
                     f"{cell(r['steady_instances_per_hour'], '.1f')} ({r['steady_ok']}) | "
                     f"{cell(r['median_step_s'], '.3f')} | "
                     f"{cell(r['peak_gpu_mem_gib'], '.1f')} | {cell(r['vs_k1'])} | {cell(r['steady_vs_k1'])} | "
                     f"{cell(r['vs_instance_bound'])} | "
                     f"{cell(r['vs_step_bound'])} | {r['command'].get('wall_s')} |")
    lines += ["", "Generation s: the records' generate_s summed (model loading and scoring outside it); process s: "
              "the whole `python -m harness.eval` call. After the first batch: the same without the run's first batch "
              "(for k=1 its first instance), whose seconds carry the process's compilation and warm-up. Median step "
              "s: a batch's step for k > 1.", "",
              "## Where an instance's seconds go", "",
              "Means over ok instances of their records' timings. For k > 1, the loop (optimise, final eval) is the "
              "batch's while the instance was in it, shared by its members; the rest is the instance's own.", "",
              "| k | " + " | ".join(PHASES) + " |", "|---|" + "---|" * len(PHASES)]
    lines += [f"| {r['k']} | " + " | ".join(cell(r["phases_s"][p]) for p in PHASES) + " |" for r in report["rows"]]
    lines += ["", "## Commands", ""]
    lines += [f"- k={r['k']}: {r['command'].get('skipped') or r['command'].get('cut') or 'rc ' + str(r['command']['rc'])}: "
              f"`{r['command']['argv']}`" for r in report["rows"]]
    return "\n".join(lines) + "\n"


def write_report(out: Path, report: dict[str, Any]) -> Path:
    slug = device_slug(report["hardware"], report["settings"]["tiny"])
    out.mkdir(parents=True, exist_ok=True)
    (out / f"throughput_{slug}.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    (out / f"throughput_{slug}.md").write_text(markdown(report))
    return out / f"throughput_{slug}.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.e2e.throughput", description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny checkpoints and sizes on the CPU")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "e2e", help="checkpoints (shared with the e2e run)")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default $OUT, else results/perf)")
    parser.add_argument("--instances", type=int, default=16)
    parser.add_argument("--batch", default="1,4", help="batch sizes (method.batch_instances), one run each")
    parser.add_argument("--steps", type=int, default=None, help=f"default {BOUND_STEPS} (tiny: 2)")
    parser.add_argument("--budget-s", type=float, default=560.0, help="stop starting/kill runs past this")
    parser.add_argument("--extra-overrides", nargs="*", default=[], help="more harness.eval overrides, every run")
    parser.add_argument("--batched-overrides", nargs="*", default=[],
                        help="overrides for the k > 1 runs only (e.g. the memory a batch needs: "
                             "student.uncheckpointed_blocks=0), so k=1 stays the shipped one-at-a-time path")
    args = parser.parse_args(argv)
    clock = Clock(args.budget_s)
    out = args.out or (Path(os.environ["OUT"]) if os.environ.get("OUT") else ROOT / "results" / "perf")
    work = args.work.resolve()
    here = work / "throughput"
    shutil.rmtree(here / "runs", ignore_errors=True)  # this call's records only
    here.mkdir(parents=True, exist_ok=True)
    log = here / "throughput.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "1", "TOKENIZERS_PARALLELISM": "false"}
    steps = args.steps or (2 if args.tiny else BOUND_STEPS)
    batches = [int(k) for k in args.batch.split(",") if k]
    sizes = SIZES[args.tiny]["ruler"]

    ensure_checkpoints(work / "ckpt", args.tiny, log, clock, env)
    data = write_tiny_release(here / "data" / f"ruler_t2v_{args.instances}", records=throughput_records(args.instances))
    judge, judge_url = start_judge(here, env)
    rows = []
    try:
        common = [*model_overrides(work / "ckpt", args.tiny), "bench=ruler", f"bench.data_dir={data}", *sizes,
                  *judge_overrides(judge_url, here), f"output_root={here / 'runs'}", "progress=false",
                  *args.extra_overrides]
        for k in batches:
            batched = args.batched_overrides if k > 1 else []
            command = run_logged(eval_argv(k, steps=steps, instances=args.instances, common=[*common, *batched]), log,
                                 clock, env)
            row = run_row(here / "runs" / "ruler" / "vlmteach" / run_name(k), k, args.instances,
                          first_group(data, args.instances, k))
            rows.append({**row, "command": {**command, "argv": " ".join(["python", *command["argv"][1:]])}})
    finally:
        judge.kill()
        judge.wait()
    hw = hardware()
    add_ratios(rows, hw.get("gpu"), steps)
    report = {"hardware": hw, "rows": rows,
              "settings": {"tiny": args.tiny, "instances": args.instances, "batch": batches, "steps": steps,
                           "sizes": list(sizes), "extra_overrides": args.extra_overrides,
                           "batched_overrides": args.batched_overrides, "budget_s": args.budget_s,
                           "bound": {"gpu": BOUND_GPU, "s_per_step": BOUND_S_PER_STEP,
                                     "s_per_instance": BOUND_S_PER_INSTANCE, "steps": BOUND_STEPS}}}
    path = write_report(out, report)
    shutil.copyfile(log, path.with_name(path.stem + "_log.txt"))
    complete = all(r["ok"] == r["expected"] for r in rows)
    print(markdown(report))
    print(f"[throughput] report: {path} ({'complete' if complete else 'INCOMPLETE'})")
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
