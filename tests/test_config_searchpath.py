"""Config groups of your own, in your own folder (``hydra.searchpath``, ``--config-dir``), without forking ``conf/``."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cli import harness_eval, run_directory
from harness.config import CONF_DIR, validate_overrides
from harness.types import UserError


@pytest.fixture
def my_groups(tmp_path) -> Path:
    """A folder with ``teacher/my_vlm.yaml``: the micro teacher, told another clock."""
    teacher = yaml.safe_load((CONF_DIR / "teacher" / "micro.yaml").read_text())
    assert teacher["video_fps"] != 3.0
    (tmp_path / "groups" / "teacher").mkdir(parents=True)
    (tmp_path / "groups" / "teacher" / "my_vlm.yaml").write_text(yaml.safe_dump({**teacher, "video_fps": 3.0}))
    return tmp_path / "groups"


def test_a_teacher_of_your_own_folder_passes_the_check(my_groups):
    with pytest.raises(UserError, match="unknown teacher 'my_vlm'"):
        validate_overrides(["teacher=my_vlm"])
    validate_overrides([f"hydra.searchpath=[file://{my_groups}]", "teacher=my_vlm", "teacher.video_fps=2.0"])
    validate_overrides(["teacher=micro,my_vlm"], config_dir=str(my_groups))  # python -m harness.eval --config-dir


def test_suggestions_include_the_search_path(my_groups):
    with pytest.raises(UserError, match=r"unknown teacher 'my_vml'\. Available: .*my_vlm.*Did you mean: my_vlm"):
        validate_overrides([f"hydra.searchpath=[file://{my_groups}]", "teacher=my_vml"])


def test_a_search_path_folder_that_does_not_exist_is_named(tmp_path):
    with pytest.raises(UserError, match=r"hydra.searchpath entry .*missing.* is not a folder"):
        validate_overrides([f"hydra.searchpath=[file://{tmp_path / 'missing'}]", "teacher=micro"])


def test_a_run_uses_the_teacher_of_your_folder(my_groups, tmp_path):
    out = harness_eval(f"hydra.searchpath=[file://{my_groups}]", "teacher=my_vlm", "method=best_of_n", "method.n=2",
                       "limit=1", f"output_root={tmp_path / 'runs'}").stdout
    run = run_directory(out)
    assert run.name.startswith("micro-my_vlm-")
    assert yaml.safe_load((run / "config.yaml").read_text())["teacher"]["video_fps"] == 3.0
    assert len(list(run.glob("records*.jsonl"))[0].read_text().splitlines()) == 1
