"""Tiny copies of RULER-Bench and VBVR-Bench in their released layouts, to try the real benchmarks' whole
path on a CPU with the micro models (no download): ``python -m benchmarks.make_tiny ruler data/ruler-tiny``.

RULER: 5 records (T2V and I2V, every checklist metric, a "vision rule" record without IF, a "game" record
outside the paper's subset) and a labelled stand-in where the judge's system prompt goes. VBVR: 2 samples
of each of 3 tasks (one per category), 32x32 ground-truth clips of 15-17 frames, scored by the official
scorers. Neither says anything about a model: their scores only show that every part runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.ruler.fixtures import write_tiny_release
from benchmarks.vbvr.synthetic import write_synthetic_bench

VBVR_TASKS = ("G-3_stable_sort_data-generator", "O-47_sliding_puzzle_data-generator", "O-18_glass_refraction_data-generator")


def write_tiny(bench: str, out: Path) -> Path:
    if bench == "ruler":
        return write_tiny_release(out)
    return write_synthetic_bench(out, VBVR_TASKS, samples_per_task=2, sizes={t: (32, 32) for t in VBVR_TASKS}, base_frames=15)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.make_tiny", description=__doc__.splitlines()[0])
    parser.add_argument("bench", choices=("ruler", "vbvr"))
    parser.add_argument("out", type=Path, help="the data directory to write (bench.data_dir)")
    args = parser.parse_args(argv)
    print(f"tiny {args.bench} data in {write_tiny(args.bench, args.out)}")


if __name__ == "__main__":
    main()
