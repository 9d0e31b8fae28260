"""RULER-Bench loading: the released format (data.jsonl and the parquet view), selection, layout."""

import json

import numpy as np
import pytest

from benchmarks.ruler import RulerBenchmark
from benchmarks.ruler.data import parse_checklist
from benchmarks.ruler.fixtures import TINY_RECORDS, write_tiny_release
from benchmarks.ruler.tasks import CATEGORY_TASKS, PAPER_CATEGORIES
from harness.types import Benchmark, UserError


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return write_tiny_release(tmp_path_factory.mktemp("ruler"))


def test_task_table_matches_the_benchmark():
    assert sum(len(t) for t in CATEGORY_TASKS.values()) == 40
    assert sum(len(CATEGORY_TASKS[c]) for c in PAPER_CATEGORIES) == 30
    assert "game" not in PAPER_CATEGORIES


def test_loads_every_record_as_an_instance(release):
    bench = RulerBenchmark(data_dir=str(release), hub_id=None, num_frames=33, height=256, width=256, fps=8)
    assert isinstance(bench, Benchmark)
    instances = bench.instances()
    ids = [i.id for i in instances]
    assert ids == sorted(ids)
    assert set(ids) == {"ruler/physics/0", "ruler/physics/1", "ruler/color/0", "ruler/chess/0", "ruler/food/0"}
    assert bench.summary["n_released"] == bench.summary["n_selected"] == 5
    assert (bench.summary["n_i2v"], bench.summary["n_t2v"]) == (3, 2)
    by_id = {i.id: i for i in instances}

    i2v = by_id["ruler/physics/0"]
    assert (i2v.bench, i2v.task, i2v.category, i2v.split) == ("ruler", "physics", "science", "test")
    assert (i2v.num_frames, i2v.height, i2v.width, i2v.fps) == (33, 256, 256, 8)
    assert i2v.first_frame.dtype == np.uint8 and i2v.first_frame.shape == (48, 64, 3)
    assert i2v.prompt == TINY_RECORDS[0]["prompt"]
    ref = i2v.reference
    assert ref["checklist"][0] == ["Rule Coherence", "Does the ball fall down?"]
    assert len(ref["checklist"]) == 5
    assert ref["implicit_explanation"] == "Gravity pulls the ball down to the floor."
    assert ref["gt_image"].endswith("gt/physics_0.png") and ref["input_video"] == ""
    # Judge-only material never leaks into what the student is given.
    assert "Gravity" not in i2v.prompt

    assert by_id["ruler/physics/1"].first_frame is None  # T2V
    assert by_id["ruler/color/0"].reference["input_video"].endswith("videos/color_0.mp4")
    # The checklist stored as JSON text (parquet style) is parsed too.
    assert by_id["ruler/food/0"].reference["checklist"][1] == ["Visual Fidelity", "Are hands realistic?"]
    assert bench.video_relpath(by_id["ruler/color/0"]) == "color/0.mp4"


def test_parquet_view_gives_the_same_instances(release, tmp_path):
    jsonl = RulerBenchmark(data_dir=str(release), hub_id=None).instances()
    parquet = RulerBenchmark(data_dir=str(write_tiny_release(tmp_path, parquet=True)), hub_id=None).instances()
    assert [i.id for i in parquet] == [i.id for i in jsonl]
    assert [i.reference["checklist"] for i in parquet] == [i.reference["checklist"] for i in jsonl]
    assert [i.first_frame is None for i in parquet] == [i.first_frame is None for i in jsonl]


def test_selection_by_category_and_task(release):
    paper = RulerBenchmark(data_dir=str(release), hub_id=None, categories=list(PAPER_CATEGORIES))
    assert {i.category for i in paper.instances()} == {"science", "vision rule", "humanity"}
    assert paper.summary["n_released"] == 5 and paper.summary["n_selected"] == 4
    one = RulerBenchmark(data_dir=str(release), hub_id=None, categories=["science"], tasks=["physics"])
    assert [i.id for i in one.instances()] == ["ruler/physics/0", "ruler/physics/1"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"categories": ["sciense"]}, "unknown RULER-Bench category"),
        ({"tasks": ["physic"]}, "unknown RULER-Bench task"),
        ({"categories": ["humanity"], "tasks": ["physics"]}, "not in the selected categories"),
        ({"fps": 1}, "fps >= 2"),
    ],
)
def test_bad_selection_is_a_user_error(release, kwargs, match):
    with pytest.raises(UserError, match=match):
        RulerBenchmark(data_dir=str(release), hub_id=None, **kwargs)


def test_missing_data_says_how_to_download(tmp_path):
    with pytest.raises(UserError, match="make data BENCH=ruler"):
        RulerBenchmark(data_dir=str(tmp_path / "nowhere"), hub_id=None).instances()


def test_uncached_hub_dataset_offline_says_how_to_download():
    with pytest.raises(UserError, match="make data BENCH=ruler"):
        RulerBenchmark(hub_id="no-such-org/no-such-ruler-bench").instances()


def test_missing_media_of_a_selected_record_fails_early(release, tmp_path):
    root = write_tiny_release(tmp_path)
    (root / "gt" / "chess_0.png").unlink()
    with pytest.raises(UserError, match="chess_0.png"):
        RulerBenchmark(data_dir=str(root), hub_id=None).instances()
    # Not selected -> not needed.
    assert len(RulerBenchmark(data_dir=str(root), hub_id=None, categories=["science"]).instances()) == 2


def test_malformed_records_are_user_errors(tmp_path):
    root = write_tiny_release(tmp_path)
    rows = [json.loads(line) for line in (root / "data.jsonl").read_text().splitlines()]
    rows.append(dict(rows[0]))  # same task/index twice
    (root / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(UserError, match="two records for physics/0"):
        RulerBenchmark(data_dir=str(root), hub_id=None).instances()
    with pytest.raises(UserError, match="unknown checklist metric"):
        parse_checklist([{"Aesthetics": "Is it pretty?"}], "record")
    with pytest.raises(UserError, match="not JSON"):
        parse_checklist("[{'Rule Coherence': 'q'}]", "record")
    with pytest.raises(UserError, match="single-key"):
        parse_checklist([{"Rule Coherence": "a", "Visual Fidelity": "b"}], "record")
