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


def test_the_timeline_counts_overlapping_kernels_once_and_the_gaps_as_idle(bench):
    events = [  # microseconds; two steps
        {"cat": "kernel", "name": "cudnn_generated_fort_native_sdpa_sm90_flash_fprop", "ts": 0, "dur": 400},
        {"cat": "kernel", "name": "nvjet_sm90_tst_128x200", "ts": 300, "dur": 300},  # overlaps by 100
        {"cat": "kernel", "name": "sm80_xmma_dgrad_implicit_gemm_indexed", "ts": 1000, "dur": 200},
        {"cat": "gpu_memcpy", "name": "Memcpy HtoD", "ts": 1300, "dur": 100},
        {"cat": "kernel", "name": "triton_red_fused_add_mul_0", "ts": 1900, "dur": 100},
        {"cat": "cpu_op", "name": "aten::mm", "ts": 0, "dur": 5000},  # host events are not the GPU's
    ]
    timeline = bench.gpu_timeline(events, steps=2)
    assert timeline["wall"] == pytest.approx(2000 / 2 / 1e6)
    assert timeline["busy"] == pytest.approx(1000 / 2 / 1e6)  # 0-600, 1000-1200, 1300-1400, 1900-2000
    assert timeline["idle"] == pytest.approx(1000 / 2 / 1e6)
    assert timeline["attention"] == pytest.approx(200e-6) and timeline["matmuls"] == pytest.approx(150e-6)
    assert timeline["convolutions"] == pytest.approx(100e-6) and timeline["copies"] == pytest.approx(50e-6)
    assert timeline["compiled (Triton)"] == pytest.approx(50e-6)


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


def test_the_gaps_are_binned_by_length_and_the_longest_named(bench):
    events = [
        {"cat": "kernel", "name": "a", "ts": 0, "dur": 100},
        {"cat": "kernel", "name": "b", "ts": 110, "dur": 100},  # 10 us after a
        {"cat": "kernel", "name": "c", "ts": 150, "dur": 20},  # inside b: no gap
        {"cat": "kernel", "name": "d", "ts": 710, "dur": 100},  # 500 us after b
        {"cat": "kernel", "name": "e", "ts": 2810, "dur": 100},  # 2 ms after d
        {"cat": "cuda_runtime", "name": "cudaStreamSynchronize", "ts": 900, "dur": 1900},
        {"cat": "cuda_runtime", "name": "cudaLaunchKernel", "ts": 2800, "dur": 5},
    ]
    gaps = bench.idle_gaps(events, steps=1)
    assert gaps["idle_s_by_gap"] == pytest.approx({"< 20 us (launch latency)": 10e-6, "20 us - 1 ms": 500e-6,
                                                   ">= 1 ms": 2000e-6})
    assert [(g["after"], g["before"]) for g in gaps["longest"]] == [("d", "e"), ("b", "d"), ("a", "b")]
    assert gaps["host_syncs_per_step"] == 1 and gaps["host_sync_s_per_step"] == pytest.approx(1900e-6)
