"""Regenerate the committed micro sets (dev and evaluation) from their seeds in ``sets.py``.

python -m benchmarks.micro.make_data [--set dev|eval ...]
"""

from __future__ import annotations

import argparse
from collections import Counter

from benchmarks.micro.dataset import write_instances
from benchmarks.micro.sets import SETS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="sets", nargs="+", choices=sorted(SETS), default=sorted(SETS))
    args = parser.parse_args(argv)
    for name in args.sets:
        spec = SETS[name]
        instances = spec.generate()
        write_instances(instances, spec.path)
        counts = Counter((x.split, x.task) for x in instances)
        print(
            f"{name} (seed {spec.seed}): wrote {len(instances)} instances to {spec.path}: "
            + ", ".join(f"{s}/{t}={n}" for (s, t), n in sorted(counts.items()))
        )


if __name__ == "__main__":
    main()
