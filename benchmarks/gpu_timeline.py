"""Where a GPU's time goes, from a torch profiler chrome trace of its activity (``make bench-gpu --profile``).

Times in a trace are microseconds; every figure here is seconds per step. Kernels, copies and memsets are
the GPU's events; ``cuda*Synchronize`` runtime calls are the host waiting for it.
"""

from __future__ import annotations

import re
from typing import Any

# Kinds of GPU kernel, by name, first match wins (convolutions' implicit GEMMs before the matmuls).
KERNEL_KINDS = (
    ("convolutions", re.compile(r"conv|implicit_gemm|nchwToNhwc|nhwcToNchw", re.I)),
    ("attention", re.compile(r"sdpa|flash|fmha|attention", re.I)),
    ("matmuls", re.compile(r"gemm|nvjet|cutlass|s1688|matmul", re.I)),
    ("compiled (Triton)", re.compile(r"^triton_")),
)
GPU_EVENTS = ("kernel", "gpu_memcpy", "gpu_memset")
GAP_BINS = {"< 20 us (launch latency)": (0, 20), "20 us - 1 ms": (20, 1000), ">= 1 ms": (1000, float("inf"))}


def kernel_kind(name: str) -> str:
    return next((kind for kind, pattern in KERNEL_KINDS if pattern.search(name)), "other kernels")


def gpu_spans(events: list[dict[str, Any]]) -> list[tuple[float, float, dict[str, Any]]]:
    """(start, end, event) of every GPU event, by start."""
    return sorted(((e["ts"], e["ts"] + e["dur"], e) for e in events if e.get("cat") in GPU_EVENTS and "dur" in e),
                  key=lambda span: span[:2])


def gpu_timeline(events: list[dict[str, Any]], steps: int) -> dict[str, float]:
    """Wall time from the first GPU event's start to the last's end, the time anything ran (overlaps
    once), idle time, then the time in each kind of kernel and in copies."""
    spans = gpu_spans(events)
    if not spans:
        return {}
    kinds: dict[str, float] = {}
    busy, reach = 0.0, spans[0][0]
    for start, end, event in spans:
        kind = kernel_kind(event["name"]) if event["cat"] == "kernel" else "copies"
        kinds[kind] = kinds.get(kind, 0.0) + event["dur"]
        busy += max(0.0, end - max(start, reach))
        reach = max(reach, end)
    wall = reach - spans[0][0]
    totals = {"wall": wall, "busy": busy, "idle": wall - busy} | dict(sorted(kinds.items(), key=lambda kv: -kv[1]))
    return {key: us / steps / 1e6 for key, us in totals.items()}


def idle_gaps(events: list[dict[str, Any]], steps: int, top: int = 15) -> dict[str, Any]:
    """The GPU's idle time by gap length, the longest gaps with the kernels on either side, and the host's
    waits for the GPU."""
    gaps, reach, previous = [], None, ""
    for start, end, event in gpu_spans(events):
        if reach is not None and start > reach:
            gaps.append((start - reach, previous, event["name"]))
        if reach is None or end >= reach:
            reach, previous = end, event["name"]
    syncs = [e for e in events if e.get("cat") == "cuda_runtime" and "Synchronize" in e.get("name", "")]
    return {
        "idle_s_by_gap": {label: sum(g for g, *_ in gaps if lo <= g < hi) / steps / 1e6
                          for label, (lo, hi) in GAP_BINS.items()},
        "gaps_per_step": len(gaps) / steps,
        "longest": [{"ms": g / 1e3, "previous": a[:80], "next": b[:80]} for g, a, b in sorted(gaps, reverse=True)[:top]],
        "host_syncs_per_step": len(syncs) / steps,
        "host_sync_s_per_step": sum(e.get("dur", 0) for e in syncs) / steps / 1e6,
    }


def timeline_markdown(timeline: dict[str, float]) -> str:
    lines = ["Where a step's GPU time goes (GPU activity alone recorded):", "", "| | s / step | share of the step |",
             "|---|---|---|"]
    lines += [f"| {key} | {seconds:.3f} | {seconds / timeline['wall']:.0%} |" for key, seconds in timeline.items()]
    return "\n".join(lines) + "\n"


def gaps_markdown(gaps: dict[str, Any]) -> str:
    lines = [f"GPU idle per step by gap length ({gaps['gaps_per_step']:.0f} gaps per step): "
             + ", ".join(f"{label} {s:.3f} s" for label, s in gaps["idle_s_by_gap"].items()) + ".",
             f"Host waits for the GPU: {gaps['host_syncs_per_step']:.1f} synchronising calls per step, "
             f"{gaps['host_sync_s_per_step']:.3f} s.", "", "Longest gaps:", "",
             "| ms | kernel before the gap | kernel after the gap |", "|---|---|---|"]
    lines += [f"| {g['ms']:.2f} | {g['previous']} | {g['next']} |" for g in gaps["longest"]]
    return "\n".join(lines) + "\n"
