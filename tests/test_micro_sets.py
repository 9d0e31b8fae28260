"""The micro world's sets have fixed roles (issue #31): training, dev and evaluation seeds never overlap, every
script generates its instances from a named work seed, and the training and selection code refuses the
evaluation set."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from benchmarks.micro import sets
from harness.types import UserError
from lab.micro.training import data, measure

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "lab" / "micro" / "training").glob("*.py")) + sorted((ROOT / "scripts").glob("*.py"))
BYPASSES = {"generate_instances", "generate_set"}  # instance generation without the work-seed guard


def test_no_two_roles_share_a_seed():
    roles = {**{f"{s.name} set": s.seed for s in sets.SETS.values()}, **sets.WORK_SEEDS}
    seeds = list(roles.values())
    assert len(set(seeds)) == len(seeds), roles
    assert sets.EVAL.seed not in sets.WORK_SEEDS.values() and sets.DEV.seed not in sets.WORK_SEEDS.values()
    assert sets.EVAL.seed != sets.DEV.seed


def _calls(path: Path) -> list[ast.Call]:
    return [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Call)]


def _name(node: ast.expr) -> str | None:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None


def test_every_script_generates_instances_from_a_named_work_seed():
    seen = 0
    for path in SCRIPTS:
        for call in _calls(path):
            name = _name(call.func)
            guarded = any(isinstance(a, ast.Call) and _name(a.func) == "check_work_seed" for a in call.args)
            assert name not in BYPASSES or guarded, f"{path.name}:{call.lineno} generates instances past the seed guard"
            if name != "training_instances":
                continue
            seed = call.args[2] if len(call.args) > 2 else next(k.value for k in call.keywords if k.arg == "seed")
            seed_name = _name(seed)
            assert seed_name is not None and getattr(sets, seed_name, None) in sets.WORK_SEEDS.values(), (
                f"{path.name}:{call.lineno}: seed {ast.unparse(seed)} is not a work seed of benchmarks/micro/sets.py"
            )
            seen += 1
    assert seen >= 6  # pipeline.py's training and audit sets, measure.py's, the teacher benchmark's


@pytest.mark.parametrize("committed", sorted(sets.SETS))
def test_training_instances_refuse_a_committed_sets_seed(committed):
    with pytest.raises(UserError, match=f"seed {sets.SETS[committed].seed} generates the micro {committed} set"):
        data.training_instances(("id",), 1, sets.SETS[committed].seed)
    assert len(data.training_instances(("id",), 1, sets.AUDIT_SEED)) == 4


def test_selection_and_measurement_refuse_the_evaluation_set(monkeypatch):
    with pytest.raises(UserError, match="evaluation set is read only by make eval"):
        measure.dev_subset(1, "eval")
    bench, chosen = measure.dev_subset(1)
    assert bench.set == "dev" and bench.data_path == sets.DEV.path and len(chosen) == 8
    monkeypatch.setattr(sys, "argv", ["measure", "--compare", "1", "--set", "eval"])
    with pytest.raises(UserError, match="make choices on the dev set"):
        measure.main()  # refused before any model loads
    with pytest.raises(UserError, match="unknown micro set 'test'"):
        sets.selection_set("test")
