"""The micro world's instance sets and the generator seed each role owns (issue #31).

- ``dev`` (seed 0, 104 instances): every choice is made here or on training seeds (weights, learning
  rates, thresholds, which checkpoint ships). It is the set `make eval` ran until issue #31.
- ``eval`` (seed 2606, 200 instances): `make eval`'s default, read once for the headline after every
  choice is frozen. No training, selection or measurement script has generated it.
- Work seeds: the instances that training, selection and measurement scripts generate for themselves.

``python -m benchmarks.micro.make_data`` writes both committed sets; a test checks that the committed files
are exactly what it writes, and that no two roles share a seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchmarks.micro.dataset import generate_set
from harness.types import Instance, UserError

DATA_DIR = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class InstanceSet:
    name: str
    seed: int
    n_per_family: int  # per family and split
    path: Path
    role: str

    def generate(self) -> list[Instance]:
        return generate_set(self.seed, self.n_per_family)


DEV = InstanceSet("dev", 0, 13, DATA_DIR / "micro_dev.parquet", "every choice is made on it")
EVAL = InstanceSet("eval", 2606, 25, DATA_DIR / "micro_eval.parquet", "make eval's headline, read once")
SETS = {s.name: s for s in (DEV, EVAL)}

STUDENT_SEED, TEACHER_SEED, LIGHT_SEED = 1, 2, 3  # pipeline.py: the three training sets
TEACHER_BENCH_SEED = 5  # scripts/bench_micro_teacher.py
UNSEEN_SEED = 7  # measure.py's default report: instances no trained component has seen
AUDIT_SEED = 17  # the VAE's read-back rate on a seed nothing trains on (docs/micro-world.md)
WORK_SEEDS = {
    "student": STUDENT_SEED,
    "teacher": TEACHER_SEED,
    "light decoder": LIGHT_SEED,
    "teacher throughput": TEACHER_BENCH_SEED,
    "measure.py": UNSEEN_SEED,
    "VAE audit": AUDIT_SEED,
}


def check_work_seed(seed: int) -> int:
    """``seed``, if a script may generate instances from it: never a committed set's seed."""
    for s in SETS.values():
        if seed == s.seed:
            raise UserError(
                f"seed {seed} generates the micro {s.name} set ({s.role}); training, selection and measurement "
                f"scripts generate their own instances from the work seeds of benchmarks/micro/sets.py"
            )
    return seed


def selection_set(name: str) -> InstanceSet:
    """The committed set a selection or measurement script may score: ``dev``; the evaluation set is refused."""
    if name == EVAL.name:
        raise UserError(
            "the micro evaluation set is read only by make eval's headline, once every choice is frozen; "
            "make choices on the dev set (--set dev) or on training seeds (issue #31)"
        )
    if name not in SETS:
        raise UserError(f"unknown micro set {name!r}; known: {sorted(SETS)}")
    return SETS[name]
