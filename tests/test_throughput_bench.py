"""The throughput benchmark (``python -m benchmarks.e2e.throughput``, issue 35) in its tiny form: k=1 and k=2 runs
of vlmteach through ``python -m harness.eval`` on the tiny random-weight checkpoints, and a report read from their
records. Float32 (``--extra-overrides``): the batched loop equals the one-at-a-time loop within
tests/test_vlmteach_batched.py's tolerance there; in the shipped bfloat16 the losses here differed by up to 2.4e-4."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.e2e import throughput
from benchmarks.ruler.benchmark import RulerBenchmark
from harness.rundir import RunDir
from harness.runner import generation_groups
from harness.vlmteach import VlmTeachTrace
from tests.cli import ROOT
from tests.test_vlmteach_batched import LOSS_TOL

INSTANCES, STEPS = 2, 2  # one batch of two at k=2
FLOAT32 = ("student.dtype=float32", "student.light_decoder.dtype=float32", "teacher.dtype=float32")
BATCHED = "student.uncheckpointed_blocks=0"  # for the k > 1 runs only (as a batch's memory may need on a GPU)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    work, out = tmp_path_factory.mktemp("work"), tmp_path_factory.mktemp("out")
    proc = subprocess.run([sys.executable, "-m", "benchmarks.e2e.throughput", "--tiny", "--work", str(work),
                           "--out", str(out), "--instances", str(INSTANCES), "--batch", "1,2", "--steps", str(STEPS),
                           "--budget-s", "200", "--extra-overrides", *FLOAT32, "--batched-overrides", BATCHED],
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-6000:]
    report = json.loads((out / "throughput_tiny_cpu.json").read_text())
    records = {row["k"]: RunDir(row["run_dir"]).latest_records() for row in report["rows"]}
    return report, records, (out / "throughput_tiny_cpu.md").read_text(), proc.stdout


def test_every_run_has_all_its_instances_ok(bench):
    report, records, *_ = bench
    assert [(r["k"], r["ok"], r["expected"]) for r in report["rows"]] == [(1, INSTANCES, INSTANCES), (2, INSTANCES, INSTANCES)]
    for k, latest in records.items():
        assert len(latest) == INSTANCES and all(r["status"] == "ok" and r["steps"] == STEPS for r in latest.values()), k
    assert all(r["command"]["rc"] == 0 and "python -m harness.eval method=vlmteach" in r["command"]["argv"]
               for r in report["rows"])
    assert [BATCHED in r["command"]["argv"] for r in report["rows"]] == [False, True]


def test_the_batched_run_is_the_one_at_a_time_run_within_tolerance(bench):
    _, records, *_ = bench
    one, two = records[1], records[2]
    assert sorted(one) == sorted(two)
    for iid, own in one.items():
        batched = two[iid]
        assert "batch_s" in batched["timings"] and "batch_s" not in own["timings"]
        assert batched["timings"]["batch_s"] == pytest.approx(2 * batched["timings"]["generate_s"])
        b, o = VlmTeachTrace.from_dict(batched["trace"]), VlmTeachTrace.from_dict(own["trace"])
        assert (b.queries, b.lora_seed, len(b.per_step)) == (o.queries, o.lora_seed, STEPS + 1)
        assert [s.loss for s in b.per_step] == pytest.approx([s.loss for s in o.per_step], abs=LOSS_TOL)


def test_the_report_is_computed_from_the_records(bench):
    report, records, md, stdout = bench
    rows = {r["k"]: r for r in report["rows"]}
    for k, latest in records.items():
        row, values = rows[k], list(latest.values())
        generation_s = sum(r["timings"]["generate_s"] for r in values)
        steps = [s["seconds"] for r in values for s in r["trace"]["per_step"] if s["seconds"] is not None]
        assert len(steps) == INSTANCES * STEPS  # the final evaluation is untimed
        assert row["generation_s"] == pytest.approx(generation_s)
        assert row["instances_per_hour"] == pytest.approx(INSTANCES * 3600 / generation_s)
        assert row["median_step_s"] == pytest.approx(statistics.median(steps))
        assert row["peak_gpu_mem_gib"] is None and row["vs_instance_bound"] is None and row["vs_step_bound"] is None
        assert f"| {k} | {INSTANCES} / {INSTANCES} | {row['generation_s']:.2f} | {row['instances_per_hour']:.1f} |" in md
        for phase in throughput.PHASES:
            assert row["phases_s"][phase] == pytest.approx(statistics.mean(r["timings"][phase] for r in values))
        assert row["phases_s"]["optimise_s"] > 0
    assert rows[2]["vs_k1"] == pytest.approx(rows[2]["instances_per_hour"] / rows[1]["instances_per_hour"])
    # After the first batch: k=1 leaves out the first instance in the runner's order (by id); k=2 has no second batch.
    first, second = sorted(records[1])
    assert (rows[1]["steady_ok"], rows[1]["steady_generation_s"]) == (1, records[1][second]["timings"]["generate_s"])
    assert rows[1]["steady_vs_k1"] == pytest.approx(1.0)
    assert (rows[2]["steady_ok"], rows[2]["steady_instances_per_hour"], rows[2]["steady_vs_k1"]) == (0, None, None)
    assert rows[1]["vs_k1"] == pytest.approx(1.0)
    assert "bound given for H200" in md and md in stdout


def test_the_bound_ratios_are_given_on_an_h200_only():
    row = {"k": 4, "instances_per_hour": 960.0, "s_per_instance": 3.75, "median_step_s": 0.54}
    on_h200 = [dict(row)]
    throughput.add_ratios(on_h200, "NVIDIA H200", throughput.BOUND_STEPS)
    assert on_h200[0]["vs_instance_bound"] == pytest.approx(3.75 / 7.5)
    assert on_h200[0]["vs_step_bound"] == pytest.approx(0.54 / 4 / 0.27)
    assert on_h200[0]["vs_k1"] is None  # no k=1 row to compare with
    fewer_steps, on_h100 = [dict(row)], [dict(row)]
    throughput.add_ratios(fewer_steps, "NVIDIA H200", 8)
    throughput.add_ratios(on_h100, "NVIDIA H100 80GB HBM3", throughput.BOUND_STEPS)
    assert fewer_steps[0]["vs_instance_bound"] is None and fewer_steps[0]["vs_step_bound"] is not None
    assert on_h100[0]["vs_instance_bound"] is None and on_h100[0]["vs_step_bound"] is None


def test_the_16_instance_fixture_is_one_generation_shape_in_rulers_format(tmp_path: Path):
    from benchmarks.ruler.fixtures import write_tiny_release

    data = write_tiny_release(tmp_path, records=throughput.throughput_records(16))
    instances = RulerBenchmark(data_dir=str(data), categories=["humanity", "science", "hypothetical", "semantic",
                                                               "vision rule"]).instances()
    assert len(instances) == len({i.id for i in instances}) == len({i.prompt for i in instances}) == 16
    assert all(i.first_frame is None for i in instances)  # text-to-video
    assert [len(g) for g in generation_groups(instances, 4)] == [4, 4, 4, 4]
