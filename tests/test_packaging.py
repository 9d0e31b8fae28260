"""``pip install .`` gives a working harness: configs, paper tables, the micro world's data and weights travel in
the wheel, and its console scripts run a comparison from a folder that is not the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from cli import ROOT


def _source_copy(dest: Path) -> Path:
    """The repository's files (tracked, and new ones not ignored) in ``dest``: a build writes build/ and
    *.egg-info into its source folder, which must not be the checkout other tests run in."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The wheel built from a copy of the repository, installed (without dependencies: this interpreter has them)
    into a target folder of its own."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = _source_copy(tmp / "source")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp / "dist")], check=True, capture_output=True)
    (wheel,) = (tmp / "dist").glob("vlmteach_harness-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(tmp / "site"), str(wheel)],
                   check=True, capture_output=True)
    return tmp


def test_the_wheel_ships_configs_reference_tables_and_micro_files(installed):
    (wheel,) = (installed / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in ("harness/conf/config.yaml", "harness/conf/teacher/micro.yaml",
                     "harness/conf/hydra/launcher/local_cpus.yaml", "harness/reference/ruler_table4.csv",
                     "benchmarks/micro/data/micro_eval.parquet", "benchmarks/micro/weights/teacher/chat_template.jinja",
                     "benchmarks/micro/weights/student/transformer/diffusion_pytorch_model.safetensors"):
        assert expected in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    for script in ("vlmteach-eval = harness.eval:cli", "vlmteach-table = harness.table:main",
                   "vlmteach-status = harness.status:main"):
        assert script in scripts


def test_the_installed_scripts_run_a_micro_comparison_outside_the_repository(installed):
    site, work = installed / "site", installed / "work"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0"}

    def run(*argv: str) -> str:
        proc = subprocess.run(argv, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=300)
        assert proc.returncode == 0, f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout[-6000:]}"
        return proc.stdout

    where = run(sys.executable, "-c", "import harness.paths as p; print(p.CONF_DIR); print(p.REFERENCE_DIR)")
    assert where.split() == [str(site / "harness" / "conf"), str(site / "harness" / "reference")]

    out = run(str(site / "bin" / "vlmteach-eval"), "--multirun", "bench=micro", "method=frozen,best_of_n", "limit=2",
              "progress=false")
    assert "frozen done" in out and "best_of_n done" in out
    for method in ("frozen", "best_of_n"):
        (records,) = (work / "results" / "runs" / "micro" / method).glob("*/records*.jsonl")
        assert len(records.read_text().splitlines()) == 2
    table = run(str(site / "bin" / "vlmteach-table"), "results/runs/micro")
    rows = [line for line in table.splitlines() if line.startswith(("| frozen ", "| best_of_n "))]
    assert len(rows) == 2 and all("n=2" in row for row in rows), table
    status = run(str(site / "bin" / "vlmteach-status"), "results/runs/micro")
    assert "2 of 2 runs complete" in status
