"""Check that two runs of the same instances agree instance by instance (e.g. a sharded multi-GPU
run against a single-GPU run): same ids, statuses, seeds, scores and sub-scores.

    python scripts/compare_runs.py RUN_A RUN_B [--tol 0]
Exit 0 when they agree, 1 otherwise (the differences are printed).
"""

from __future__ import annotations

import argparse
import math
import sys

from harness.rundir import RunDir

FIELDS = ("status", "seed", "score")


def differences(a: dict, b: dict, tol: float) -> list[str]:
    out = [f"only in A: {i}" for i in sorted(a.keys() - b.keys())] + [f"only in B: {i}" for i in sorted(b.keys() - a.keys())]
    for iid in sorted(a.keys() & b.keys()):
        ra, rb = a[iid], b[iid]
        for field in FIELDS:
            va, vb = ra.get(field), rb.get(field)
            same = va == vb or (isinstance(va, float) and isinstance(vb, float) and math.isclose(va, vb, abs_tol=tol))
            if not same:
                out.append(f"{iid}: {field} {va!r} != {vb!r}")
        if ra.get("scores") != rb.get("scores"):
            out.append(f"{iid}: scores {ra.get('scores')} != {rb.get('scores')}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_a")
    parser.add_argument("run_b")
    parser.add_argument("--tol", type=float, default=0.0, help="absolute tolerance on scores")
    args = parser.parse_args(argv)
    a, b = RunDir(args.run_a).latest_records(), RunDir(args.run_b).latest_records()
    diffs = differences(a, b, args.tol)
    for line in diffs:
        print(line)
    print(f"{len(a.keys() & b.keys())} instances compared; {len(diffs)} differences")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
