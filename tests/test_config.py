"""Every config composes and names a real class; bad names and keys fail with suggestions."""

import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import get_object
from omegaconf import OmegaConf, open_dict

from benchmarks.ruler.fixtures import write_tiny_release
from benchmarks.vbvr.synthetic import write_synthetic_bench
from harness.runner import Runner

from harness.config import CONF_DIR, GROUPS, config_hash, group_options, score_hash, validate_overrides
from harness.types import UserError


def _compose(*overrides):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


ALL_OPTIONS = [(g, o) for g in GROUPS if g != "experiment" for o in group_options(g)]


@pytest.mark.parametrize("group,option", ALL_OPTIONS, ids=[f"{g}={o}" for g, o in ALL_OPTIONS])
def test_every_group_option_composes_and_targets_a_real_class(group, option):
    cfg = _compose(f"{group}={option}")
    node = cfg[group]
    if node is None:  # e.g. judge=none
        return
    target = OmegaConf.select(cfg, f"{group}._target_")
    assert target, f"{group}/{option}.yaml has no _target_"
    assert callable(get_object(target))


@pytest.fixture(scope="module")
def bench_data(tmp_path_factory):
    """A data directory in the released layout for each benchmark that reads one."""
    root = tmp_path_factory.mktemp("data")
    tasks = ["G-3_stable_sort_data-generator", "O-47_sliding_puzzle_data-generator"]
    return {"ruler": write_tiny_release(root / "ruler"), "vbvr": write_synthetic_bench(root / "vbvr", tasks)}


@pytest.mark.parametrize("bench", group_options("bench"))
def test_every_benchmark_config_plans_a_run_with_the_run_level_keys(bench, bench_data, tmp_path):
    """The runner, as ``harness.eval`` builds it, up to its plan: ``limit`` and the shards are the same keys for all."""
    data = bench_data.get(bench.split("_")[0])
    overrides = [f"bench={bench}", f"output_root={tmp_path}", "limit=3", "num_shards=2", "shard=1",
                 *([f"bench.data_dir={data}"] if data else [])]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    choices = dict(cfg.hydra.runtime.choices)
    with open_dict(cfg):
        del cfg["hydra"]
    runner = Runner(cfg, choices)
    runner.run.path.mkdir(parents=True)
    planned = runner.prepare()
    everything = sorted(i.id for i in runner.bench.instances())
    assert [i.id for i in planned] == everything[:3][2:]  # the first 3 by id, shard 1 of 2: the third
    assert runner.run.path == tmp_path / bench / "frozen" / f"micro-micro-{runner.chash}-first3"


@pytest.mark.parametrize("option", group_options("experiment"))
def test_every_experiment_composes(option):
    cfg = _compose(f"experiment={option}")
    assert cfg.method._target_


def test_unknown_group_option_suggests_close_match():
    with pytest.raises(UserError, match="unknown method 'pass_at_kk'.*Did you mean: pass_at_k"):
        validate_overrides(["method=pass_at_kk"])


def test_unknown_option_inside_a_sweep_is_caught():
    with pytest.raises(UserError, match="unknown method 'frozn'"):
        validate_overrides(["method=frozen,frozn"])


def test_unknown_key_suggests_close_match():
    with pytest.raises(UserError, match=r"unknown config key 'limt'.*limit"):
        validate_overrides(["limit=3", "limt=3"])
    with pytest.raises(UserError, match=r"'bench.limit' is a run-level key now.*write limit="):
        validate_overrides(["bench.limit=3"])


def test_valid_overrides_pass():
    validate_overrides(["bench=micro", "method=pass_at_k", "method.k=3", "limit=2", "seed=3", "+foo=1"])


def test_wrong_type_on_schema_key_is_rejected():
    with pytest.raises(Exception, match="seed"):
        _compose("seed=abc")


def test_config_hash_covers_results_not_bookkeeping():
    base = config_hash(_compose())
    assert base == config_hash(_compose())
    assert base == config_hash(_compose("limit=3", "num_shards=4", "shard=1", "run_name=x", "logger=none"))
    assert base != config_hash(_compose("seed=1"))
    # frozen does not use the teacher, so the teacher's config does not split its results
    assert base == config_hash(_compose("teacher=qwen3_vl_4b"))
    assert config_hash(_compose("method=best_of_n")) != config_hash(_compose("method=best_of_n", "teacher=qwen3_vl_4b"))


def test_the_judge_decides_scores_not_videos_and_its_transport_settings_neither():
    base = _compose("bench=ruler")
    for overrides in (["judge=none"], ["judge.model=gpt-5"], ["judge.system_prompt=paraphrase"]):
        cfg = _compose("bench=ruler", *overrides)
        assert config_hash(cfg) == config_hash(base) and score_hash(cfg) != score_hash(base), overrides
    transport = ["judge.timeout_s=5", "judge.max_retries=0", "judge.backoff_s=9", "judge.cache_dir=/x",
                 "judge.base_url=http://127.0.0.1:1/v1", "judge.api_key_env=null", "judge.max_attempts=1"]
    moved = _compose("bench=ruler", *transport)
    assert (config_hash(moved), score_hash(moved)) == (config_hash(base), score_hash(base))
    assert config_hash(_compose("bench=ruler", "bench.num_frames=33")) != config_hash(base)
    vbvr = _compose("bench=vbvr")
    patched = _compose("bench=vbvr", "bench.patch_safe_distance=false")
    assert config_hash(patched) == config_hash(vbvr) and score_hash(patched) != score_hash(vbvr)


def test_cli_reports_unknown_names_with_exit_code_2():
    proc = subprocess.run([sys.executable, "-m", "harness.eval", "bench=mikro"], capture_output=True, text=True, cwd=CONF_DIR.parent)
    assert proc.returncode == 2
    assert "Did you mean: micro" in proc.stderr


def test_hydras_own_flags_work_in_their_documented_space_form():
    proc = subprocess.run([sys.executable, "-m", "harness.eval", "--cfg", "job", "method=vlmteach", "limit=2"],
                          capture_output=True, text=True, cwd=CONF_DIR.parent)
    assert proc.returncode == 0, proc.stderr
    job = OmegaConf.create(proc.stdout)
    assert job.limit == 2 and job.method._target_ == "harness.vlmteach.VlmTeach"
