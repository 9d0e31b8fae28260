"""Hydra wiring of RULER-Bench and its judge (conf/bench/ruler*.yaml, conf/judge/*.yaml)."""

import shutil
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from benchmarks.ruler import ApiJudge, RulerBenchmark
from benchmarks.ruler.fixtures import write_tiny_release
from harness.types import ScoringError

CONF = Path(__file__).resolve().parents[1] / "conf"
# A primary config of our own, so the test does not depend on the project's default choices;
# like the project's, it lists `judge` before `bench` (the bench's judge override needs that).
PRIMARY = "defaults:\n  - _self_\n  - judge: none\n  - bench: ruler\n"


@pytest.fixture(scope="module")
def conf_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("conf")
    for group in ("bench", "judge"):
        (root / group).mkdir()
        for name in ("ruler.yaml", "ruler_full.yaml") if group == "bench" else ("none.yaml", "o3.yaml", "local_vlm.yaml"):
            shutil.copy(CONF / group / name, root / group / name)
    (root / "config.yaml").write_text(PRIMARY)
    return root


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return write_tiny_release(tmp_path_factory.mktemp("ruler"))


def compose_cfg(conf_dir, *overrides):
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def test_ruler_brings_the_o3_judge_without_needing_a_key(conf_dir, release, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    cfg = compose_cfg(conf_dir, f"bench.data_dir={release}", f"judge.cache_dir={tmp_path}")
    bench = instantiate(cfg.bench)
    assert isinstance(bench, RulerBenchmark) and isinstance(bench.judge, ApiJudge)
    assert bench.judge.model_id == "o3"
    assert bench.judge.client.extra_params == {"presence_penalty": 0} and type(bench.judge.client.extra_params) is dict
    assert bench.categories == {"humanity", "science", "hypothetical", "semantic", "vision rule"}
    assert (bench.num_frames, bench.height, bench.width, bench.fps) == (89, 512, 512, 16)
    assert {i.category for i in bench.instances()} == {"science", "vision rule", "humanity"}  # no game


def test_full_benchmark_keeps_every_category(conf_dir, release):
    cfg = compose_cfg(conf_dir, "bench=ruler_full", f"bench.data_dir={release}", "judge=none")
    bench = instantiate(cfg.bench)
    assert bench.categories is None
    assert len(bench.instances()) == 5


def test_judge_none_scores_nothing_and_says_what_to_set(conf_dir, release, tmp_path):
    cfg = compose_cfg(conf_dir, "judge=none", f"bench.data_dir={release}")
    bench = instantiate(cfg.bench)
    assert bench.judge is None
    with pytest.raises(ScoringError, match="set judge=o3 and OPENAI_API_KEY"):
        bench.score(bench.instances()[0], tmp_path / "any.mp4")


def test_system_prompt_is_a_config_value(conf_dir, release, tmp_path):
    official = tmp_path / "system_prompt.txt"
    official.write_text("Rate each question Good, Medium or Poor.")
    cfg = compose_cfg(conf_dir, f"bench.data_dir={release}", f"judge.system_prompt_path={official}")
    assert instantiate(cfg.bench).judge.system_prompt == official.read_text()


def test_default_judge_prompt_is_rulers_own_file_beside_the_data(conf_dir, tmp_path):
    release = write_tiny_release(tmp_path / "ruler")
    beside = release / "eval" / "system_prompt.txt"
    beside.parent.mkdir(exist_ok=True)
    beside.write_text("Where make data BENCH=ruler puts RULER-Bench's eval/system_prompt.txt.")
    bench = instantiate(compose_cfg(conf_dir, f"bench.data_dir={release}", f"judge.cache_dir={tmp_path}").bench)
    bench.instances()
    assert bench.judge.system_prompt == beside.read_text()
    local = compose_cfg(conf_dir, "judge=local_vlm").bench.judge
    assert local.system_prompt == "official" and local.system_prompt_path is None


def test_local_vlm_judge_config_names_its_model(conf_dir):
    cfg = compose_cfg(conf_dir, "judge=local_vlm", "judge.teacher.path=/models/qwen3-vl-4b")
    judge = OmegaConf.to_container(cfg.bench.judge, resolve=True)
    assert judge["_target_"] == "benchmarks.ruler.LocalVlmJudge"
    assert judge["model_id"] == "/models/qwen3-vl-4b"
    assert judge["teacher"]["_target_"] == "harness.teachers.qwen_vl.QwenVLTeacher.from_pretrained"
