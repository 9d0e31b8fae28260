"""Regenerate the committed micro evaluation set.

python -m benchmarks.micro.make_data [--seed 0] [--n-per-family 13] [--out benchmarks/micro/data/micro.parquet]
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from benchmarks.micro.dataset import (
    DEFAULT_DATA_PATH,
    DEFAULT_N_PER_FAMILY,
    DEFAULT_SEED,
    default_instances,
    write_instances,
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--n-per-family", type=int, default=DEFAULT_N_PER_FAMILY, help="instances per family and split")
    parser.add_argument("--out", type=Path, default=DEFAULT_DATA_PATH)
    args = parser.parse_args(argv)
    instances = default_instances(args.seed, args.n_per_family)
    write_instances(instances, args.out)
    counts = Counter((x.split, x.task) for x in instances)
    print(
        f"wrote {len(instances)} instances to {args.out}: "
        + ", ".join(f"{s}/{t}={n}" for (s, t), n in sorted(counts.items()))
    )


if __name__ == "__main__":
    main()
