"""benchmarks/gpu_timeline.py: the arithmetic of where a profiled GPU's time goes, on hand-made trace events."""

from __future__ import annotations

import pytest

from benchmarks.gpu_timeline import gpu_timeline, idle_gaps


def test_the_timeline_counts_overlapping_kernels_once_and_the_gaps_as_idle():
    events = [  # microseconds; two steps
        {"cat": "kernel", "name": "cudnn_generated_fort_native_sdpa_sm90_flash_fprop", "ts": 0, "dur": 400},
        {"cat": "kernel", "name": "nvjet_sm90_tst_128x200", "ts": 300, "dur": 300},  # overlaps by 100
        {"cat": "kernel", "name": "sm80_xmma_dgrad_implicit_gemm_indexed", "ts": 1000, "dur": 200},
        {"cat": "gpu_memcpy", "name": "Memcpy HtoD", "ts": 1300, "dur": 100},
        {"cat": "kernel", "name": "triton_red_fused_add_mul_0", "ts": 1900, "dur": 100},
        {"cat": "cpu_op", "name": "aten::mm", "ts": 0, "dur": 5000},  # host events are not the GPU's
    ]
    timeline = gpu_timeline(events, steps=2)
    assert timeline["wall"] == pytest.approx(2000 / 2 / 1e6)
    assert timeline["busy"] == pytest.approx(1000 / 2 / 1e6)  # 0-600, 1000-1200, 1300-1400, 1900-2000
    assert timeline["idle"] == pytest.approx(1000 / 2 / 1e6)
    assert timeline["attention"] == pytest.approx(200e-6) and timeline["matmuls"] == pytest.approx(150e-6)
    assert timeline["convolutions"] == pytest.approx(100e-6) and timeline["copies"] == pytest.approx(50e-6)
    assert timeline["compiled (Triton)"] == pytest.approx(50e-6)


def test_the_gaps_are_binned_by_length_and_the_longest_named():
    events = [
        {"cat": "kernel", "name": "a", "ts": 0, "dur": 100},
        {"cat": "kernel", "name": "b", "ts": 110, "dur": 100},  # 10 us after a
        {"cat": "kernel", "name": "c", "ts": 150, "dur": 20},  # inside b: no gap
        {"cat": "kernel", "name": "d", "ts": 710, "dur": 100},  # 500 us after b
        {"cat": "kernel", "name": "e", "ts": 2810, "dur": 100},  # 2 ms after d
        {"cat": "cuda_runtime", "name": "cudaStreamSynchronize", "ts": 900, "dur": 1900},
        {"cat": "cuda_runtime", "name": "cudaLaunchKernel", "ts": 2800, "dur": 5},
    ]
    gaps = idle_gaps(events, steps=1)
    assert gaps["idle_s_by_gap"] == pytest.approx({"< 20 us (launch latency)": 10e-6, "20 us - 1 ms": 500e-6,
                                                   ">= 1 ms": 2000e-6})
    assert [(g["previous"], g["next"]) for g in gaps["longest"]] == [("d", "e"), ("b", "d"), ("a", "b")]
    assert gaps["host_syncs_per_step"] == 1 and gaps["host_sync_s_per_step"] == pytest.approx(1900e-6)
