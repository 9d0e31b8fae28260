"""The micro generator: determinism, stable ids, the documented ID/OOD shifts, the vocabulary."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from benchmarks.micro import FAMILIES, generate_instances, render_solution, tokenize, vocabulary
from benchmarks.micro.world import NUM_FRAMES, SIZE, manhattan
from tests.cli import ROOT


def _same(a, b) -> bool:
    return (a.id, a.task, a.category, a.split, a.prompt, a.reference) == (
        b.id,
        b.task,
        b.category,
        b.split,
        b.prompt,
        b.reference,
    ) and np.array_equal(a.first_frame, b.first_frame)


def test_same_seed_same_instances_other_seed_other_instances():
    a = generate_instances("id", 3, seed=7)
    b = generate_instances("id", 3, seed=7)
    c = generate_instances("id", 3, seed=8)
    assert all(_same(x, y) for x, y in zip(a, b, strict=True))
    assert [x.id for x in a] == [x.id for x in c]
    assert sum(x.reference != y.reference for x, y in zip(a, c, strict=True)) >= len(a) // 2


def test_ids_are_stable_and_independent_of_how_many_are_generated():
    few = generate_instances("ood", 2, seed=3)
    many = generate_instances("ood", 5, seed=3)
    by_id = {x.id: x for x in many}
    assert [x.id for x in few] == sorted(f"micro/ood/{t}/{i:05d}" for t in FAMILIES for i in range(2))
    assert all(_same(x, by_id[x.id]) for x in few)


def test_instances_have_the_fixed_geometry_and_a_first_frame_matching_the_solution():
    for x in generate_instances("id", 2, seed=0) + generate_instances("ood", 2, seed=0):
        assert (x.bench, x.num_frames, x.height, x.width, x.fps) == ("micro", NUM_FRAMES, SIZE, SIZE, 8)
        assert x.first_frame.dtype == np.uint8 and x.first_frame.shape == (SIZE, SIZE, 3)
        assert x.category == FAMILIES[x.task].category
        clip = render_solution(x)
        assert np.array_equal(clip[0], x.first_frame)
        assert not np.array_equal(clip[-1], clip[0])


def test_ood_shifts_are_the_documented_held_out_combinations():
    for split in ("id", "ood"):
        xs = {t: [x for x in generate_instances(split, 8, seed=1) if x.task == t] for t in FAMILIES}
        ood = split == "ood"
        for x in xs["reach_target"]:
            agent = x.reference["movers"][0]["color"]
            target = next(m["color"] for m in x.reference["markers"] if m["role"] == "target")
            assert ((agent, target) == ("yellow", "red")) != ood
            assert f"the {agent} square to the {target} outlined cell" in x.prompt
        for x in xs["avoid_forbidden"]:
            assert sum(m["role"] == "forbidden" for m in x.reference["markers"]) == (4 if ood else 2)
        for x in xs["match_colors"]:
            assert len(x.reference["movers"]) == (3 if ood else 2)
        for x in xs["toggle_lights"]:
            assert x.reference["orientation"] == ("column" if ood else "row")
            wrong_words = {"leftmost", "rightmost"} if ood else {"topmost", "bottommost"}
            assert not wrong_words & set(tokenize(x.prompt)), x.prompt


def test_specs_make_the_rules_matter():
    xs = generate_instances("id", 10, seed=2) + generate_instances("ood", 10, seed=2)
    for x in xs:
        ref = x.reference
        if x.task == "toggle_lights":
            assert ref["start"] != ref["target"]
            continue
        assert all(manhattan(tuple(m["start"]), tuple(m["goal"])) >= 2 for m in ref["movers"])
        if x.task == "avoid_forbidden":  # some forbidden cell lies on a straight shortest route
            s, g = tuple(ref["movers"][0]["start"]), tuple(ref["movers"][0]["goal"])
            assert any(
                manhattan(s, tuple(m["cell"])) + manhattan(tuple(m["cell"]), g) == manhattan(s, g)
                for m in ref["markers"]
                if m["role"] == "forbidden"
            )


def test_vocabulary_covers_every_prompt_and_is_normalised():
    vocab = vocabulary()
    assert vocab == sorted(set(vocab)) and all(w == w.lower() and " " not in w for w in vocab)
    assert {",", ".", "yellow", "grey", "outlined", "leftmost", "bottommost"} <= set(vocab)
    for x in generate_instances("id", 6, seed=5) + generate_instances("ood", 6, seed=5):
        assert set(tokenize(x.prompt)) <= set(vocab), x.prompt


def test_unknown_family_or_split_is_rejected():
    with pytest.raises(ValueError, match="unknown micro families"):
        generate_instances("id", 1, seed=0, families=["sokoban"])
    with pytest.raises(ValueError, match="split"):
        generate_instances("test", 1, seed=0)


def test_the_gpu_benchmark_imports_without_datasets():
    """``scripts/bench_gpu.py`` runs on a device machine that has no ``datasets`` (the e2e wheel pack leaves it
    out): of the micro world it needs the vocabulary and the model builders, not the parquet I/O."""
    code = ("import importlib.util, sys; sys.modules['datasets'] = None; "  # None: `import datasets` raises
            "spec = importlib.util.spec_from_file_location('bench_gpu', 'scripts/bench_gpu.py'); "
            "spec.loader.exec_module(importlib.util.module_from_spec(spec)); "
            "from benchmarks.micro import generate_instances; assert generate_instances('id', 1, seed=0)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
