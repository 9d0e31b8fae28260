"""VBVR-Bench loading, generation protocols, output layout and configs, on data in the released format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from benchmarks.vbvr import VbvrBenchmark, tasks
from benchmarks.vbvr.data import INDEX_FILE
from benchmarks.vbvr.synthetic import synthetic_clip, write_synthetic_bench
from harness.config import CONF_DIR, component_kwargs
from harness.types import Benchmark, UserError
from harness.video import read_mp4

G3 = "G-3_stable_sort_data-generator"  # In-Domain, Perception
O47 = "O-47_sliding_puzzle_data-generator"  # In-Domain, Abstraction
G24 = "G-24_separate_objects_no_spin_data-generator"  # Out-of-Domain, Transformation
O39 = "O-39_maze_data-generator"  # Out-of-Domain, Spatiality
TASKS = [G3, O47, G24, O39]
SIZES = {O47: (72, 100)}  # not multiples of 32; the others are 96 x 128


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return write_synthetic_bench(tmp_path / "VBVR-Bench", TASKS, samples_per_task=2, sizes=SIZES)


def _clip(task: str, idx: int) -> np.ndarray:
    height, width = SIZES.get(task, (96, 128))
    return synthetic_clip(height, width, 9 + 2 * idx, seed=TASKS.index(task) + idx)


def test_instances_follow_the_released_layout(data_dir: Path) -> None:
    bench = VbvrBenchmark(data_dir=str(data_dir))
    assert isinstance(bench, Benchmark)
    insts = bench.instances()
    assert [i.id for i in insts] == sorted(f"vbvr/{t}/{k:05d}" for t in TASKS for k in range(2))
    by_id = {i.id: i for i in insts}
    expected = {G3: ("id", "Perception"), O47: ("id", "Abstraction"), G24: ("ood", "Transformation"), O39: ("ood", "Spatiality")}
    for task, (split, category) in expected.items():
        for k in range(2):
            inst = by_id[f"vbvr/{task}/{k:05d}"]
            assert (inst.bench, inst.task, inst.split, inst.category) == ("vbvr", task, split, category)
            assert inst.reference["index"] == k
            assert inst.prompt == (data_dir / tasks.SPLIT_FOLDERS[split] / task / f"{k:05d}" / "prompt.txt").read_text().strip()
            np.testing.assert_array_equal(inst.first_frame, _clip(task, k)[0])
            for key in ("gt_first_frame", "gt_final_frame", "gt_video"):
                assert Path(inst.reference[key]).is_file()
            assert inst.reference["source_id"] == f"{task}_{k:05d}"


def test_official_protocol_reads_gt_frame_count_and_first_frame_size(data_dir: Path) -> None:
    exact = VbvrBenchmark(data_dir=str(data_dir), frames_4k1=False, size_multiple=1).instances()
    for inst in exact:
        gt_frames = read_mp4(inst.reference["gt_video"])
        assert inst.num_frames == len(gt_frames) == 9 + 2 * inst.reference["index"]
        assert (inst.height, inst.width) == SIZES.get(inst.task, (96, 128)) == inst.first_frame.shape[:2]
        assert inst.fps == 16


def test_official_protocol_rounds_up_like_diffsynth(data_dir: Path) -> None:
    rounded = {i.id: i for i in VbvrBenchmark(data_dir=str(data_dir)).instances()}  # 4k+1 frames, x32 sizes
    assert [rounded[f"vbvr/{G3}/{k:05d}"].num_frames for k in range(2)] == [9, 13]  # GT 9, 11
    assert (rounded[f"vbvr/{O47}/00000"].height, rounded[f"vbvr/{O47}/00000"].width) == (96, 128)  # GT 72 x 100
    assert (rounded[f"vbvr/{G3}/00000"].height, rounded[f"vbvr/{G3}/00000"].width) == (96, 128)
    sixteen = {i.task: (i.height, i.width) for i in VbvrBenchmark(data_dir=str(data_dir), size_multiple=16).instances()}
    assert sixteen[O47] == (80, 112)
    fixed = VbvrBenchmark(data_dir=str(data_dir), protocol="paper", num_frames=89, size="512x512").instances()
    assert {(i.num_frames, i.height, i.width, i.fps) for i in fixed} == {(89, 512, 512, 16)}
    assert fixed[0].first_frame.shape[:2] != (512, 512)  # the condition image stays the released one


def _compose_bench(name: str):
    """The bench group's config as the runner instantiates it."""
    with initialize_config_dir(config_dir=str(CONF_DIR / "bench"), version_base="1.3"):
        cfg = compose(config_name=name)
    return component_kwargs(OmegaConf.create({"bench": cfg}), "bench")


def test_configs_instantiate_each_protocol(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VBVR_DATA_DIR", str(data_dir))
    official = instantiate(_compose_bench("vbvr"))
    paper = instantiate(_compose_bench("vbvr_paper"))
    assert official.scorer.patch_safe_distance and paper.scorer.patch_safe_distance
    o = {i.id: i for i in official.instances()}
    p = {i.id: i for i in paper.instances()}
    assert o.keys() == p.keys() and len(o) == 8
    assert {(i.num_frames, i.height, i.width) for i in p.values()} == {(89, 512, 512)}
    o47 = o[f"vbvr/{O47}/00001"]
    assert (o47.num_frames, o47.height, o47.width) == (13, 96, 128)
    monkeypatch.delenv("VBVR_DATA_DIR")
    assert instantiate(_compose_bench("vbvr")).data_dir == "data/vbvr"  # where `make data BENCH=vbvr` puts it


def test_first_frame_from_inline_base64_when_png_missing(data_dir: Path) -> None:
    # entry 0 is plain base64, entry 1 carries a data: URL prefix
    for k in range(2):
        (data_dir / "In-Domain_50" / G3 / f"{k:05d}" / "first_frame.png").unlink()
    insts = {i.id: i for i in VbvrBenchmark(data_dir=str(data_dir), tasks=[G3]).instances()}
    for k in range(2):
        np.testing.assert_array_equal(insts[f"vbvr/{G3}/{k:05d}"].first_frame, _clip(G3, k)[0])


def test_tree_without_index_gives_the_same_instances(data_dir: Path) -> None:
    with_index = VbvrBenchmark(data_dir=str(data_dir)).instances()
    (data_dir / INDEX_FILE).unlink()
    from_tree = VbvrBenchmark(data_dir=str(data_dir)).instances()
    strip = lambda i: (i.id, i.task, i.split, i.category, i.prompt, i.num_frames, i.height, i.width)  # noqa: E731
    assert [strip(i) for i in from_tree] == [strip(i) for i in with_index]


def test_split_and_task_filters(data_dir: Path) -> None:
    ood = VbvrBenchmark(data_dir=str(data_dir), splits=["ood"]).instances()
    assert {i.task for i in ood} == {G24, O39} and len(ood) == 4
    only = VbvrBenchmark(data_dir=str(data_dir), tasks=[O39]).instances()
    assert [i.id for i in only] == [f"vbvr/{O39}/00000", f"vbvr/{O39}/00001"]
    with pytest.raises(UserError, match="unknown VBVR-Bench tasks"):
        VbvrBenchmark(data_dir=str(data_dir), tasks=["G-999_nope"])
    with pytest.raises(UserError, match="subset of"):
        VbvrBenchmark(data_dir=str(data_dir), splits=["test"])
    with pytest.raises(UserError, match="bench.size"):
        VbvrBenchmark(data_dir=str(data_dir), size="big")


def test_video_relpath_is_the_official_output_layout(data_dir: Path) -> None:
    bench = VbvrBenchmark(data_dir=str(data_dir))
    paths = {i.id: bench.video_relpath(i) for i in bench.instances()}
    assert paths[f"vbvr/{G3}/00001"] == f"In-Domain_50/{G3}/00001.mp4"
    assert paths[f"vbvr/{O39}/00000"] == f"Out-of-Domain_50/{O39}/00000.mp4"


def _rewrite_index(data_dir: Path, edit) -> None:
    index = data_dir / INDEX_FILE
    entries = json.loads(index.read_text())
    edit(entries)
    index.write_text(json.dumps(entries))


def test_corrupt_index_entries_are_user_errors(data_dir: Path) -> None:
    def unknown_task(entries):
        for key in ("first_frame_path", "final_frame_path", "prompt_path", "ground_truth_video_path"):
            entries[0][key] = entries[0][key].replace(G3, "G-999_unknown_data-generator")

    def inconsistent(entries):
        entries[0]["final_frame_path"] = entries[2]["final_frame_path"]

    def wrong_split(entries):
        for key in ("first_frame_path", "final_frame_path", "prompt_path", "ground_truth_video_path"):
            entries[0][key] = entries[0][key].replace("In-Domain_50", "Out-of-Domain_50")

    for edit, message in ((unknown_task, "unknown VBVR-Bench task"), (inconsistent, "paths name 2 samples"),
                          (wrong_split, "not in folder Out-of-Domain_50")):
        original = (data_dir / INDEX_FILE).read_text()
        _rewrite_index(data_dir, edit)
        with pytest.raises(UserError, match=message):
            VbvrBenchmark(data_dir=str(data_dir)).instances()
        (data_dir / INDEX_FILE).write_text(original)


def test_missing_data_says_how_to_download(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"make data BENCH=vbvr.*hf download Video-Reason/VBVR-Bench-Data"):
        VbvrBenchmark(data_dir=str(tmp_path / "absent")).instances()
    # HF_HUB_OFFLINE=1 (tests/conftest.py) and a repo never cached: no network, a clear error
    with pytest.raises(UserError, match="cannot get the hub dataset"):
        VbvrBenchmark(hub_id="vlmteach-tests/no-such-dataset").instances()
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no VBVR-Bench samples"):
        VbvrBenchmark(data_dir=str(tmp_path / "empty")).instances()


def test_task_table_matches_the_documented_split_and_category_counts() -> None:
    # VBVR-EvalKit's TASK_CATEGORY_MAP: tasks per split and category
    documented = {"id": (15, 9, 11, 8, 7), "ood": (8, 5, 19, 5, 13)}
    for split, counts in documented.items():
        assert tuple(len(tasks.TASKS_BY_SPLIT[split][c]) for c in tasks.CATEGORIES) == counts
    assert len(tasks.TASK_SPLIT) == 100
    assert all(t in tasks.TASKS_BY_SPLIT["ood"]["Transformation"] + tasks.TASKS_BY_SPLIT["ood"]["Perception"]
               for t in tasks.SAFE_DISTANCE_TASKS)
    ids = tasks.expected_ids()
    assert len(ids) == len(set(ids)) == 500 and ids == sorted(ids)
