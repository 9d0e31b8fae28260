"""The vlmteach configs: the paper's defaults, each Table III variant, and the one sweep over them."""

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from harness.config import CONF_DIR, component_kwargs
from harness.vlmteach import VlmTeach

VARIANTS = sorted(p.stem for p in (CONF_DIR / "method").glob("vlmteach*.yaml"))


def method_for(name: str, student: str = "wan22_ti2v_5b") -> tuple[VlmTeach, str]:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"method={name}", f"student={student}"],
                      return_hydra_config=True)
    return instantiate(component_kwargs(cfg, "method"), _convert_="all"), cfg.hydra.runtime.choices.method


def test_default_is_the_papers_setting():
    method, label = method_for("vlmteach")
    assert label == "vlmteach"
    assert (method.goal_weight, method.num_frames, method.opt_step) == (0.5, 24, "first")
    assert (method.num_steps, method.early_stop, method.tau) == (40, True, 0.22)
    assert method.optimizer == "adamw" and method.optimizer_kwargs["lr"] == 5e-5
    assert method.optimizer_kwargs["weight_decay"] == 0.0 and method.fixed_queries is None


@pytest.mark.parametrize("name", ["vlmteach", "vlmteach_process_only"])
def test_a_student_config_sets_its_own_learning_rate_for_every_variant(name):
    micro, _ = method_for(name, student="micro")
    assert micro.optimizer_kwargs["lr"] == OmegaConf.load(CONF_DIR / "student" / "micro.yaml").lora.lr != 5e-5
    assert method_for(name, student="fastwan22_ti2v_5b")[0].optimizer_kwargs["lr"] == 5e-5  # none set: the paper's


@pytest.mark.parametrize(
    "name, changed",
    [
        ("vlmteach_goal_only", {"goal_weight": 1.0}),
        ("vlmteach_process_only", {"goal_weight": 0.0}),
        ("vlmteach_last_step", {"opt_step": "last"}),
        ("vlmteach_all_steps", {"opt_step": "all"}),
        ("vlmteach_k12", {"num_frames": 12}),
        ("vlmteach_k48", {"num_frames": 48}),
        *[(f"vlmteach_steps{n}", {"num_steps": n, "early_stop": False}) for n in (0, 5, 10, 16, 20, 40)],
    ],
)
def test_each_ablation_changes_only_its_own_keys(name, changed):
    default, _ = method_for("vlmteach")
    method, label = method_for(name)
    assert label == name  # the label names the run directory: one per variant
    for key, value in vars(default).items():
        assert getattr(method, key) == changed.get(key, value), key


def test_generic_questions_replace_synthesis():
    method, _ = method_for("vlmteach_generic")
    assert method.fixed_queries.goal == "Is the goal of the task achieved at the end of the video?"
    assert method.fixed_queries.process == ["Is the process valid, with objects intact and moving continuously?"]


def test_the_table3_sweep_covers_frozen_and_every_variant():
    sweep = OmegaConf.load(CONF_DIR / "experiment" / "table3_ablations.yaml")
    methods = str(sweep.hydra.sweeper.params.method).split(",")
    assert methods[0] == "frozen" and sorted(methods[1:]) == VARIANTS
    assert len(VARIANTS) == 14  # default + generic + 2 lambda + 2 opt_step + 2 K + 6 step counts


def test_bad_settings_fail_at_construction():
    with pytest.raises(ValueError, match="opt_step"):
        VlmTeach(opt_step="middle")
    with pytest.raises(ValueError, match="goal_weight"):
        VlmTeach(goal_weight=2.0)
    with pytest.raises(ValueError, match="no process question"):
        VlmTeach(fixed_queries={"goal": "g?", "process": []})
    with pytest.raises(ValueError, match="optimizer"):
        VlmTeach(optimizer="lion")
