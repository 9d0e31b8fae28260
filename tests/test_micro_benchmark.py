"""MicroBenchmark: the committed data, filtering, layout, mp4 scoring, errors and the Hydra config."""

from __future__ import annotations

from pathlib import Path

import hydra
import numpy as np
import pytest
from omegaconf import OmegaConf

from benchmarks.micro import MicroBenchmark, render_solution, score_clip
from benchmarks.micro.dataset import generate_set, read_instances, write_instances
from benchmarks.micro.sets import DEV, EVAL, SETS
from harness.types import Benchmark, ScoringError, UserError
from harness.video import write_mp4

CONF = Path(__file__).resolve().parents[1] / "conf" / "bench" / "micro.yaml"


@pytest.mark.parametrize("name", sorted(SETS))
def test_committed_data_is_exactly_what_the_seeded_script_generates(name):
    committed = read_instances(SETS[name].path)
    fresh = SETS[name].generate()
    assert [x.id for x in committed] == [x.id for x in fresh]
    for a, b in zip(committed, fresh, strict=True):
        assert (a.task, a.category, a.split, a.prompt, a.reference) == (
            b.task,
            b.category,
            b.split,
            b.prompt,
            b.reference,
        )
        assert (a.num_frames, a.height, a.width, a.fps) == (b.num_frames, b.height, b.width, b.fps)
        assert a.first_frame.dtype == np.uint8 and np.array_equal(a.first_frame, b.first_frame)


def test_default_set_is_the_evaluation_set_sorted_and_filtered():
    bench = MicroBenchmark()
    assert isinstance(bench, Benchmark) and bench.name == "micro" and bench.data_path == EVAL.path
    ids = [x.id for x in bench.instances()]
    assert ids == sorted(ids) and len(ids) == len(set(ids)) >= 200
    ood = MicroBenchmark(split="ood").instances()
    assert ood and all(x.split == "ood" for x in ood)
    lights = MicroBenchmark(split="id", families=["toggle_lights"]).instances()
    assert len(lights) == EVAL.n_per_family and {(x.split, x.task) for x in lights} == {("id", "toggle_lights")}
    assert len(ood) + len(MicroBenchmark(split="id").instances()) == len(ids)


def test_dev_set_is_selectable_and_is_another_set():
    dev, evaluation = MicroBenchmark(set="dev").instances(), MicroBenchmark().instances()
    assert len(dev) == 8 * DEV.n_per_family == 104
    first = {x.id: x for x in evaluation}
    shared = [x for x in dev if x.id in first]  # ids name a cell and an index, not a seed
    assert shared and all(x.prompt != first[x.id].prompt or x.reference != first[x.id].reference for x in shared)


def test_bad_config_and_missing_data_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="split"):
        MicroBenchmark(split="test")
    with pytest.raises(UserError, match="unknown micro families"):
        MicroBenchmark(families=["sokoban"])
    with pytest.raises(UserError, match=r"bench.set must be one of \['dev', 'eval'\]"):
        MicroBenchmark(set="test")
    with pytest.raises(UserError, match="python -m benchmarks.micro.make_data"):
        MicroBenchmark(data_path=str(tmp_path / "nope.parquet")).instances()


def test_custom_data_path_and_video_layout(tmp_path):
    instances = generate_set(seed=11, n_per_family=1)
    write_instances(instances, tmp_path / "mine.parquet")
    bench = MicroBenchmark(data_path=str(tmp_path / "mine.parquet"))
    loaded = bench.instances()
    assert [x.reference for x in loaded] == [x.reference for x in instances]
    x = next(x for x in loaded if x.id == "micro/ood/match_colors/00000")
    assert bench.video_relpath(x) == "ood/match_colors/00000.mp4"


def test_score_reads_the_mp4(tmp_path):
    bench = MicroBenchmark(families=["avoid_forbidden"])
    instance = bench.instances()[0]
    good, bad = tmp_path / "good.mp4", tmp_path / "bad.mp4"
    write_mp4(good, render_solution(instance), fps=instance.fps)
    write_mp4(bad, render_solution(instance, "enter_forbidden"), fps=instance.fps)
    assert bench.score(instance, good).score >= 0.95
    result = bench.score(instance, bad)
    assert result.score <= 0.6 and result.scores["avoids_forbidden"] == 0.0


def test_corrupt_or_wrong_shaped_videos_raise_scoring_error(tmp_path):
    bench = MicroBenchmark(families=["reach_target"])
    instance = bench.instances()[0]
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video at all" * 10)
    with pytest.raises(ScoringError, match=instance.id):
        bench.score(instance, garbage)
    with pytest.raises(ScoringError):
        bench.score(instance, tmp_path / "missing.mp4")
    short = tmp_path / "short.mp4"
    write_mp4(short, render_solution(instance)[:9], fps=8)
    with pytest.raises(ScoringError, match="shape"):
        bench.score(instance, short)


def test_hydra_config_instantiates_the_benchmark():
    cfg = OmegaConf.load(CONF)
    assert not {"limit", "shard", "num_shards"} & set(cfg)  # run-level keys: the top-level schema's, not a bench's
    bench = hydra.utils.instantiate(cfg)
    assert isinstance(bench, MicroBenchmark) and bench.split == "all" and bench.set == "eval"
    assert bench.data_path == EVAL.path and len(bench.instances()) >= 200


@pytest.mark.parametrize("name", sorted(SETS))
def test_every_committed_instance_is_solvable_and_not_solved_by_doing_nothing(name):
    for instance in MicroBenchmark(set=name).instances():
        assert score_clip(instance, render_solution(instance)).scores["solved"] == 1.0, instance.id
        assert score_clip(instance, render_solution(instance, "static")).score <= 0.6, instance.id
