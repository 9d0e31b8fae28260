"""docs/ablations.md states the configs it names: the paper's setting and the generic questions' wording."""

import re
from pathlib import Path

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "ablations.md").read_text()


def test_paper_setting_names_the_paper_bench_config():
    (sentence,) = re.findall(r"For the paper's setting use `bench=(\w+)`", DOC)
    assert sentence == "vbvr_paper" and (ROOT / "conf" / "bench" / f"{sentence}.yaml").is_file()


def test_generic_questions_are_quoted_as_configured_and_say_what_the_teacher_sees():
    queries = OmegaConf.load(ROOT / "conf" / "method" / "vlmteach_generic.yaml").fixed_queries
    flat = " ".join(DOC.split())
    for question in [queries.goal, *queries.process]:
        assert f'"{question}"' in flat
    assert "never sees the task" in flat and "K frames of the student's current video" in flat
