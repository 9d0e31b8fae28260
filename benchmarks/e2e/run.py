"""The end-to-end run at real scale on one GPU (issue 32), or at tiny scale on a CPU (``--tiny``).

    python -m benchmarks.e2e.run [--tiny] [--work build/e2e] [--out DIR] [--benches ruler,vbvr]
                                 [--methods frozen,pass_at_k,best_of_n,prompt_rewrite,videotpo,vlmteach]
                                 [--budget-s 560] [--vlmteach-steps 16] [--limit N]

(a) random-weight checkpoints in the real layouts (``benchmarks.e2e.checkpoints``: FastWan2.2, TAEHV, Qwen3-VL-4B)
under ``WORK/ckpt``, kept for the next call; (b) fixture data (``benchmarks.e2e.fixtures``: 8 RULER records, 8
VBVR samples, the out-of-memory probe); (c) the stub judge (``benchmarks.ruler.stub_judge``) on 127.0.0.1;
(d) per benchmark, one ``python -m harness.eval --multirun`` over the methods without ``num_steps``, then
vlmteach (``method.num_steps=N method.early_stop=false``) as its own run, with the shipped configs
(``student=fastwan22_ti2v_5b teacher=qwen3_vl_4b``) and paths overridden, at 89x512x512; (e) the probe: VBVR's
first_frame protocol on a 16384^2 first frame (out of memory), next to a normal sample; (f) the report
(``benchmarks.e2e.report``) in ``--out`` (default ``$OUT``, else results/perf/e2e).

Runs resume (the harness skips ok instances), so a call cut by ``--budget-s`` is finished by the same command
on the same machine. Teacher replies are capped as a real teacher's are long (``COST_OVERRIDES``): a
random-weight teacher never ends its reply and never writes parseable questions, so the shipped 256 tokens x 3
tries would time three full-length replies per instance that a real teacher does not write.
Exit code 0: every method x benchmark has all its instances ok and the probe behaved; 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.e2e import checkpoints as ck
from benchmarks.e2e import fixtures

ROOT = Path(__file__).resolve().parents[2]
METHODS = ("frozen", "vlmteach", "best_of_n", "prompt_rewrite", "pass_at_k", "videotpo")  # the order they run in
STEPPED = ("vlmteach",)  # methods with num_steps: their own run (a multirun override would break the others)
COST_OVERRIDES = ("teacher.max_new_tokens=96", "teacher.synthesis_retries=0")
CPU_OVERRIDES = ("student.device=cpu", "teacher.device=cpu", "student.compile=false", "teacher.compile=false")
SIZES = {
    False: {"ruler": ("bench.num_frames=89", "bench.height=512", "bench.width=512", "bench.fps=16"),
            "vbvr": ("bench.size=512x512", "bench.num_frames=89"), "probe": ("bench.num_frames=89",)},
    True: {"ruler": ("bench.num_frames=9", "bench.height=64", "bench.width=64", "bench.fps=16"),
           "vbvr": ("bench.size=64x64", "bench.num_frames=9"), "probe": ("bench.num_frames=9", "bench.size_multiple=1")},
}
PROBE_RUN = "oom-probe"
# The official VBVR scorers take ~16 s of CPU per 89x512² video: score in processes while the GPU generates.
SCORE_WORKERS = {False: "bench.score_workers=4", True: "bench.score_workers=1"}  # tiny: tests/test_e2e_vbvr.py covers >1


class Clock:
    def __init__(self, budget_s: float, reserve_s: float = 25.0):
        self.deadline = time.monotonic() + budget_s - reserve_s

    def left(self) -> float:
        return self.deadline - time.monotonic()


def run_logged(argv: list[str], log: Path, clock: Clock, env: dict[str, str]) -> dict:
    """``argv`` in its own process group, output to ``log``; killed when the budget runs out."""
    left = clock.left()
    if left < 30:
        return {"argv": argv, "skipped": "time budget spent", "rc": None, "wall_s": 0.0}
    t0 = time.monotonic()
    with open(log, "a", encoding="utf-8") as out:
        out.write(f"\n$ {' '.join(argv)}\n")
        out.flush()
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=left)
            cut = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            rc, cut = proc.wait(), True
    result = {"argv": argv, "rc": rc, "wall_s": round(time.monotonic() - t0, 1)}
    if cut:
        result["cut"] = "time budget spent: killed; the same command resumes it"
    print(f"[e2e] rc={rc} {result['wall_s']} s{' (cut)' if cut else ''}: {' '.join(argv[3:6])} ...", flush=True)
    return result


def start_judge(work: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port_file = work / "judge.port"
    port_file.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.ruler.stub_judge", "--port-file", str(port_file)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    while not (port_file.is_file() and port_file.read_text().strip()):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("the stub judge (python -m benchmarks.ruler.stub_judge) did not start")
        time.sleep(0.2)
    return proc, f"http://127.0.0.1:{port_file.read_text().strip()}/v1"


def ensure_checkpoints(ckpt: Path, tiny: bool, log: Path, clock: Clock, env: dict[str, str]) -> dict:
    marker = ckpt / ck.MARKER
    if marker.is_file():
        written = json.loads(marker.read_text())
        if written.get("tiny") == tiny and {"fastwan", "taehv", "qwen"} <= set(written.get("paths", {})):
            return {"reused": True, **written}
    result = run_logged([sys.executable, "-m", "benchmarks.e2e.checkpoints", "--out", str(ckpt),
                         "--only", "fastwan,taehv,qwen", *(["--tiny", "--device", "cpu"] if tiny else [])],
                        log, clock, env)
    if result["rc"] != 0 or not marker.is_file():
        raise SystemExit(f"writing the checkpoints failed (rc {result['rc']}): see {log}")
    return {"reused": False, "wall_s": result["wall_s"], **json.loads(marker.read_text())}


def judge_overrides(judge_url: str, work: Path) -> list[str]:
    return [f"judge.base_url={judge_url}", "judge.api_key_env=null", f"judge.cache_dir={work / 'judge_cache'}"]


def model_overrides(ckpt: Path, tiny: bool) -> list[str]:
    return ["student=fastwan22_ti2v_5b", f"student.path={ckpt / ck.FASTWAN_DIR}",
            f"student.light_decoder.path={ckpt / ck.TAEHV_FILE}", "teacher=qwen3_vl_4b",
            f"teacher.path={ckpt / ck.QWEN_DIR}", *(CPU_OVERRIDES if tiny else ()), *COST_OVERRIDES]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.e2e.run", description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny checkpoints and sizes on the CPU")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "e2e", help="checkpoints, data, runs (kept)")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default $OUT, else results/perf/e2e)")
    parser.add_argument("--benches", default="ruler,vbvr")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--vlmteach-steps", type=int, default=None, help="default 16 (tiny: 2)")
    parser.add_argument("--no-probe", action="store_true", help="skip the out-of-memory probe")
    parser.add_argument("--limit", type=int, default=None, help="the first n instances of each benchmark (limit=n)")
    parser.add_argument("--budget-s", type=float, default=560.0, help="stop starting/kill runs past this (resumable)")
    args = parser.parse_args(argv)
    from benchmarks.e2e import report

    t_start = time.monotonic()
    clock = Clock(args.budget_s)
    out = args.out or (Path(os.environ["OUT"]) if os.environ.get("OUT") else ROOT / "results" / "perf" / "e2e")
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    log = work / "e2e.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "1", "TOKENIZERS_PARALLELISM": "false"}
    methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise SystemExit(f"--methods: unknown {unknown}; choose from {METHODS}")
    steps = args.vlmteach_steps or (2 if args.tiny else 16)

    ckpt_info = ensure_checkpoints(work / "ckpt", args.tiny, log, clock, env)
    data = fixtures.write_all(work / "data", tiny=args.tiny)
    runs_root = work / "runs"
    judge, judge_url = start_judge(work, env)
    commands: list[dict] = []
    try:
        models = model_overrides(work / "ckpt", args.tiny)
        common = [*models, f"output_root={runs_root}", "progress=false", *([f"limit={args.limit}"] if args.limit else [])]
        judge_args = judge_overrides(judge_url, work)
        for bench in [b for b in args.benches.split(",") if b]:
            bench_args = [f"bench={bench}", f"bench.data_dir={data[bench]}", *SIZES[args.tiny][bench],
                          *(judge_args if bench == "ruler" else [SCORE_WORKERS[args.tiny]])]
            plain = [m for m in methods if m not in STEPPED]
            eval_ = [sys.executable, "-m", "harness.eval"]
            # vlmteach first: a call cut by the budget keeps the method under study; the others run in the
            # order asked (frozen, the tables' baseline, first by default), each instance recorded as it ends.
            for method in [m for m in methods if m in STEPPED]:
                commands.append({"bench": bench, "methods": [method], **run_logged(
                    [*eval_, f"method={method}", f"method.num_steps={steps}", "method.early_stop=false", *bench_args,
                     *common], log, clock, env)})
            if plain:
                commands.append({"bench": bench, "methods": plain, **run_logged(
                    [*eval_, "--multirun", f"method={','.join(plain)}", *bench_args, *common], log, clock, env)})
        if not args.no_probe:
            commands.append({"bench": "vbvr", "methods": ["frozen"], "probe": True, **run_logged(
                [sys.executable, "-m", "harness.eval", "method=frozen", "bench=vbvr", f"bench.data_dir={data['vbvr_oom']}",
                 *SIZES[args.tiny]["probe"], f"run_name={PROBE_RUN}", *common], log, clock, env)})
    finally:
        judge.kill()
        judge.wait()
    settings = {"tiny": args.tiny, "limit": args.limit, "methods": methods, "benches": args.benches.split(","), "vlmteach_steps": steps,
                "model_overrides": models, "sizes": SIZES[args.tiny], "budget_s": args.budget_s,
                "oom_instance": data["oom_instance"], "probe_expects": "CPU: an error" if args.tiny else "OutOfMemoryError",
                "wall_s": round(time.monotonic() - t_start, 1)}
    ok = report.write(out, runs_root=runs_root, commands=commands, checkpoints=ckpt_info, settings=settings, log=log)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
