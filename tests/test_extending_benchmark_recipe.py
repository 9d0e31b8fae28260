"""docs/extending.md's benchmark recipe as written: its files go into a copy of the project, its commands run there, and the
tables show the new benchmark's records, its own official aggregation and its paper table."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

from harness.results.runs import load_run
from tests.cli import ROOT, run_cli

RECIPE = ROOT / "docs" / "extending.md"


def _project_copy(dest: Path) -> Path:
    """The project's files (tracked, and new ones git does not ignore) as they are in the working tree."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    for rel in filter(None, listed.split("\0")):
        if (ROOT / rel).is_file():  # a tracked file deleted in the working tree is left out
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    return dest


def test_the_recipe_adds_a_benchmark_that_runs_and_is_tabled_with_its_own_aggregation(tmp_path):
    text = RECIPE.read_text().split("## Add a benchmark\n", 1)[1].split("\n## ", 1)[0]
    files = re.findall(r"^File `([^`]+)`[^\n]*\n\n```\w+\n(.*?)^```", text, re.M | re.S)
    assert [path for path, _ in files] == ["benchmarks/brightness.py", "conf/bench/brightness.yaml",
                                           "results/reference/brightness_paper.csv"]
    (commands,) = re.findall(r"^```bash\n(.*?)^```", text, re.M | re.S)
    project = _project_copy(tmp_path / "project")
    for path, body in files:
        assert not (project / path).exists(), f"{path} would overwrite a file of the project"
        (project / path).write_text(body)

    outputs = [run_cli(*shlex.split(line), cwd=project).stdout for line in commands.splitlines()]

    (run_dir,) = (project / "results" / "runs" / "brightness" / "frozen").iterdir()
    run = load_run(run_dir)
    assert [r["instance_id"] for r in run.records] == ["brightness/bright/0", "brightness/bright/1"]
    assert all(r["status"] == "ok" and 0 <= r["score"] <= 1 for r in run.records)
    task_mean = sum(r["score"] for r in run.records) / 2  # its official aggregation: one task here
    hook = "benchmarks.brightness.BrightnessBenchmark.official_aggregate"
    table_md = (run_dir / "table.md").read_text()
    assert f"### Official aggregation ({hook})" in table_md and f"- task_mean: {task_mean:.3f}" in table_md
    assert "- n_expected: 2" in table_md  # the manifest's plan reached it
    compared = outputs[1]
    assert f"### brightness: official aggregation ({hook})" in compared
    assert f"| frozen | {task_mean:.3f} | 2 | 2 |" in compared
    assert "| paper: Some student | 0.500 |" in compared  # the declared paper table, without --reference
