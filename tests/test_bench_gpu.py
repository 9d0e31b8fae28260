"""scripts/bench_gpu.py (`make bench-gpu`): its tiny CPU form end to end, and the arithmetic of its report."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "scripts" / "bench_gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_tiny_benchmark_reports_each_path_against_the_naive_one(tmp_path):
    subprocess.run([sys.executable, "scripts/bench_gpu.py", "--tiny", "--device", "cpu", "--steps", "2",
                    "--paths", "naive,optimised_lora16", "--profile", "1", "--out", str(tmp_path)],
                   cwd=ROOT, check=True, capture_output=True, timeout=300)
    report = json.loads((tmp_path / "bench_gpu_tiny_cpu.json").read_text())
    naive, lora16 = report["paths"]
    assert naive["speedup_vs_naive"] == [1.0, 1.0]
    step, instance = lora16["speedup_vs_naive"]
    assert step == pytest.approx(naive["s_per_step_median"] / lora16["s_per_step_median"])
    assert instance == pytest.approx(naive["instance_s"] / lora16["instance_s"])
    assert naive["vs_bound"] is None  # the bound is an H200's
    assert "| optimised_lora16 |" in (tmp_path / "bench_gpu_tiny_cpu.md").read_text()
    assert "Operators and kernels" in (tmp_path / "profile_tiny_cpu.txt").read_text()


def test_the_bound_ratio_is_given_on_an_h200_only(bench):
    rows = [{"path": "naive", "s_per_step_median": 1.5, "instance_s": 30.0},
            {"path": "compiled:20", "s_per_step_median": 0.54, "instance_s": 15.0}]
    bench.add_ratios(rows, "NVIDIA H200", steps=16)
    assert rows[1]["speedup_vs_naive"] == pytest.approx((1.5 / 0.54, 2.0))
    assert rows[1]["vs_bound"] == pytest.approx((0.54 / 0.27, 15.0 / 7.5))
    bench.add_ratios(rows, "NVIDIA H200", steps=8)
    assert rows[1]["vs_bound"][1] is None  # the per-instance bound is for 16 steps
    bench.add_ratios(rows, "NVIDIA H100 80GB HBM3", steps=16)
    assert rows[1]["vs_bound"] is None
