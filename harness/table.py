"""Compare runs: ``python -m harness.table <run dirs...> [--baseline METHOD] [--reference NAME] [--out DIR]``.

Prints one markdown table per benchmark (one row per method, paired difference against the
baseline, the paper's numbers as ``paper:`` rows). A directory that is not itself a run directory
is searched for run directories below it, so ``results/runs/vbvr`` compares every VBVR run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.results.compare import compare
from harness.results.reference import reference_names
from harness.types import UserError

__all__ = ["compare", "find_run_dirs", "main"]


def _is_run_dir(path: Path) -> bool:
    return any(path.glob("manifest*.json")) or any(path.glob("records*.jsonl"))


def find_run_dirs(paths: list[Path]) -> list[Path]:
    """Run directories named directly, or found below the given folders."""
    found: list[Path] = []
    for path in paths:
        if not path.is_dir():
            raise UserError(f"{path} does not exist or is not a directory")
        if _is_run_dir(path):
            found.append(path)
            continue
        below = sorted({p.parent for pattern in ("manifest*.json", "records*.jsonl") for p in path.rglob(pattern)})
        if not below:
            raise UserError(f"no run directory (manifest*.json / records*.jsonl) in or below {path}")
        found += below
    return list(dict.fromkeys(found))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.table", description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path, help="run directories, or folders holding them")
    parser.add_argument("--baseline", default="frozen", help="method label every row is compared with (default: frozen)")
    parser.add_argument("--reference", action="append", default=None,
                        help=f"paper table to print beside the runs (repeatable): {', '.join(reference_names())}; "
                             "default: the table each benchmark declares (vbvr, ruler)")
    parser.add_argument("--out", type=Path, default=None, help="also write compare.md and compare.csv here")
    args = parser.parse_args(argv)
    try:
        markdown, frame = compare(find_run_dirs(args.run_dirs), baseline=args.baseline, reference=args.reference)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(markdown)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "compare.md").write_text(markdown)
        frame.to_csv(args.out / "compare.csv", index=False)
        print(f"written: {args.out / 'compare.md'}, {args.out / 'compare.csv'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
