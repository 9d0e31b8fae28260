"""Wall time of vlmteach on the micro world on CPU: seconds per optimisation step and per instance.

    python scripts/bench_vlmteach_cpu.py [--instances 4] [--steps 5] [--threads 1] [hydra overrides ...]

Runs the shipped configs (student=micro teacher=micro bench=micro on its dev set, method=vlmteach) with early stop
off, so every instance takes exactly ``--steps`` updates; extra arguments are Hydra overrides, e.g.
``method=vlmteach_all_steps`` or ``student.lora.rank=4``. One untimed warm-up instance comes first.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.utils import instantiate  # noqa: E402

from harness.config import CONF_DIR, component_kwargs  # noqa: E402
from harness.method import MethodContext  # noqa: E402
from harness.seeding import derive_seed  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=4, help="timed instances (first by sorted id)")
    parser.add_argument("--steps", type=int, default=5, help="optimisation steps per instance (early stop off)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. method=vlmteach_k12")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    overrides = ["student=micro", "teacher=micro", "bench=micro", "bench.set=dev", "method=vlmteach",
                 "student.device=cpu", "teacher.device=cpu", f"method.num_steps={args.steps}", "method.early_stop=false", *args.overrides]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    t0 = time.perf_counter()
    student = instantiate(component_kwargs(cfg, "student"), _convert_="all")
    teacher = instantiate(component_kwargs(cfg, "teacher"), _convert_="all")
    bench = instantiate(component_kwargs(cfg, "bench"), _convert_="all")
    method = instantiate(component_kwargs(cfg, "method"), _convert_="all")
    load_s = time.perf_counter() - t0
    instances = sorted(bench.instances(), key=lambda i: i.id)[: args.instances + 1]
    if len(instances) < 2:
        raise SystemExit("need at least 2 instances (1 warm-up + 1 timed)")

    print(f"vlmteach on CPU: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{args.threads} thread(s); method={type(method).__name__} opt_step={cfg.method.opt_step} "
          f"K={cfg.method.num_frames} steps={args.steps}; LoRA rank {cfg.student.lora.rank}; load {load_s:.1f} s")
    print(f"{'instance':<34} {'total_s':>8} {'synth_s':>8} {'optim_s':>8} {'final_s':>8} {'s/step':>8}")
    totals, step_seconds = [], []
    for n, instance in enumerate(instances):
        ctx = MethodContext(student=student, teacher=teacher, bench=bench, seed=derive_seed(int(cfg.seed), instance.id))
        start = time.perf_counter()
        out = method.run(instance, ctx)
        total = time.perf_counter() - start
        steps = [s.seconds for s in out.trace.per_step if s.seconds is not None]
        if n == 0:
            continue  # warm-up: first-call costs (allocator, prompt cache) are not the steady state
        totals.append(total)
        step_seconds.extend(steps)
        per_step = statistics.mean(steps) if steps else float("nan")
        t = out.timings
        print(f"{instance.id:<34} {total:8.2f} {t['synthesis_s']:8.2f} {t['optimise_s']:8.2f} {t['final_s']:8.2f} "
              f"{per_step:8.3f}")
    print(f"\nseconds per optimisation step: mean {statistics.mean(step_seconds):.3f}, "
          f"median {statistics.median(step_seconds):.3f} (n={len(step_seconds)}; forward + backward + update)"
          if step_seconds else "\nno optimisation steps were timed (--steps 0)")
    print(f"seconds per instance: mean {statistics.mean(totals):.2f} (n={len(totals)}; synthesis + "
          f"{args.steps} steps + final evaluation + final sample)")


if __name__ == "__main__":
    main()
