"""Every recipe of docs/extending.md, run as written: its files (the fenced blocks tagged ``file=PATH``) go into
a folder of their own, and its command's overrides run through the runner on the micro benchmark."""

from __future__ import annotations

import re
import shlex

import pytest

from harness.config import CONF_DIR
from harness.runner import Runner
from harness.sinks import NullSink
from harness.video import read_mp4
from tests.cli import compose_runner

DOC = CONF_DIR.parent / "docs" / "extending.md"
FILE_BLOCK = re.compile(r"^```\w+ file=(\S+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
COMMAND = re.compile(r"^```bash\npython -m harness\.eval (.*?)\n```$", re.MULTILINE)


def recipe(heading: str) -> tuple[dict[str, str], list[str]]:
    """The files and the command-line overrides of the section ``## <heading>``."""
    section = DOC.read_text().split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    (command,) = COMMAND.findall(section)
    return dict(FILE_BLOCK.findall(section)), shlex.split(command)


@pytest.fixture
def run_recipe(tmp_path, monkeypatch):
    """Write a recipe's files into a fresh folder and run its command there (as a user would, from that folder)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))

    def run(heading: str) -> tuple[Runner, dict[str, dict]]:
        files, overrides = recipe(heading)
        for path, text in files.items():
            (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / path).write_text(text)
        runner = compose_runner(tmp_path / "runs", *overrides)
        records = runner.execute(NullSink()).latest_records()
        assert len(records) == 2 and all(r["status"] == "ok" for r in records.values()), records
        return runner, records

    return run


def test_every_recipe_has_its_files_and_a_command():
    for heading in ("Add a method", "Add a teacher", "Add a student"):
        files, overrides = recipe(heading)
        assert any(p.endswith(".py") for p in files) and any(p.endswith(".yaml") for p in files), heading
        assert "limit=2" in overrides


def test_the_method_recipe_runs_and_records_its_trace(run_recipe):
    runner, records = run_recipe("Add a method")
    assert type(runner.method).__name__ == "Reroll" and runner.teacher is None
    assert all(r["method"] == "reroll" and r["trace"] == {"seed": r["seed"] + 1} for r in records.values())


def test_the_teacher_recipe_answers_best_of_n(run_recipe):
    runner, records = run_recipe("Add a teacher")
    assert type(runner.teacher).__name__ == "BrightnessTeacher"
    for r in records.values():
        assert r["trace"]["queries"]["goal"].startswith("Does the video show this: ")
        means = r["trace"]["mean_p_yes"]
        assert len(means) == 2 and r["trace"]["chosen"] == means.index(max(means))


def test_the_student_recipe_makes_the_videos(run_recipe):
    runner, records = run_recipe("Add a student")
    assert type(runner.student).__name__ == "BlockStudent"
    for r in records.values():  # its videos are 8x8 blocks of one colour (up to the mp4 codec)
        video = read_mp4(runner.run.path / r["video"]).astype(float)
        blocks = video.reshape(video.shape[0], 4, 8, 4, 8, 3)
        assert blocks.std(axis=(2, 4)).mean() < 0.2 * video.std()
