"""Synthetic run directories with known numbers, written in the real layout (harness.rundir/records).

Benchmark "synth": category A holds tasks a1, a2 (split id) and a3 (split ood); category B holds
the single task b1 (split ood); 4 instances per task, ids ``synth/<task>/<k>``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from harness import records as rec
from harness.rundir import RunDir
from harness.sharding import select_shard
from harness.types import Queries, Trace
from harness.vlmteach.trace import StepLog, VlmTeachTrace

TASKS = {"a1": ("A", "id"), "a2": ("A", "id"), "a3": ("A", "ood"), "b1": ("B", "ood")}
PER_TASK = 4
IDS = sorted(f"synth/{t}/{k}" for t in TASKS for k in range(PER_TASK))


def task_of(iid: str) -> str:
    return iid.split("/")[1]


def make_record(iid: str, method: str, status: str = rec.STATUS_OK, score: float | None = None,
                seconds: float = 2.0, steps: int = 0, chash: str = "", bench: str = "synth",
                oracle: bool = False) -> rec.Record:
    category, split = TASKS[task_of(iid)]
    return rec.Record(
        instance_id=iid, bench=bench, task=task_of(iid), category=category, split=split, method=method,
        seed=7, status=status, score=score if status == rec.STATUS_OK else None,
        error="boom" if status == rec.STATUS_ERROR else None, timings={"total_s": seconds}, steps=steps,
        config_hash=chash or f"hash-{method}", video=f"videos/{iid}.mp4", oracle=oracle,
    )


class SynthBenchmark:
    """The synthetic benchmark's class as a run's config.yaml names it (``write_run(bench_target=...)``):
    no official aggregation and no paper table, unless a test gives it one."""

    name = "synth"
    reference_table = None

    @staticmethod
    def official_aggregate(records, *, expected_ids=None):
        return None


SYNTH_TARGET = f"{__name__}.SynthBenchmark"


def write_run(path: Path, method: str, scores: dict[str, float], *, errors: set[str] = frozenset(),
              unscored: set[str] = frozenset(), missing: set[str] = frozenset(), num_shards: int = 1,
              seconds: float = 2.0, steps: int = 0, ids: list[str] = IDS, bench: str = "synth",
              fields: dict[str, dict] | None = None, seed: int = 0, bench_target: str | None = None,
              trace_type: type[Trace] | None = None, audit: str | None = None, oracle: bool = False) -> RunDir:
    """A run of ``method`` (an oracle or not): ``scores`` for ok instances; the others errored, unscored or missing.
    ``fields`` sets other record fields per instance id (trace, scores, seed). ``bench_target`` is the
    benchmark class config.yaml names, ``trace_type`` the method's trace type the manifests name (harness.runner);
    ``audit`` an audit they name as manifests did before they named the trace type."""
    run = RunDir(path)
    path.mkdir(parents=True, exist_ok=True)
    bench_line = f"bench:\n  _target_: {bench_target}\n" if bench_target else ""
    run.config_path.write_text(f"seed: {seed}\nnum_shards: {num_shards}\n{bench_line}")
    chash = f"hash-{method}"
    for shard in range(num_shards):
        mine = select_shard(ids, shard, num_shards)
        manifest = {"bench": bench, "method": method, "config_hash": chash, "shard": shard,
                    "num_shards": num_shards, "instance_ids": mine, "audit": audit,
                    "trace": trace_type.import_path() if trace_type else None}
        run.manifest_path(shard, num_shards).write_text(json.dumps(manifest))
        for iid in mine:
            if iid in missing:
                continue
            status = rec.STATUS_ERROR if iid in errors else rec.STATUS_GENERATED if iid in unscored else rec.STATUS_OK
            record = make_record(iid, method, status, scores.get(iid), seconds, steps, chash, bench, oracle)
            rec.append(run.records_path(shard, num_shards), replace(record, **(fields or {}).get(iid, {})))
    return run


def frozen_scores() -> dict[str, float]:
    """Known baseline scores: task a1 -> 0.2, a2 -> 0.4, a3 -> 0.6, b1 -> 0.8, plus 0.01 * k."""
    base = {"a1": 0.2, "a2": 0.4, "a3": 0.6, "b1": 0.8}
    return {iid: base[task_of(iid)] + 0.01 * int(iid.rsplit("/", 1)[1]) for iid in IDS}


def loop_fields(frozen: dict[str, float], scores: dict[str, float]) -> dict[str, dict]:
    """vlmteach traces for ``write_run(fields=...)``: the teacher ranks the frozen videos perfectly at the loop's
    start (loss 1 - score) and the final ones backwards at its end (loss = score); it accepts instances 0 and 1
    of every task; the goal question's P(Yes) is the goal check (k odd) at the start and 0.5 at the end."""
    fields = {}
    for iid in IDS:
        k = int(iid.rsplit("/", 1)[1])
        start = StepLog(loss=1.0 - frozen[iid], p_yes=[float(k % 2), 0.9], grad_norm=1.0, seconds=0.5)
        end = StepLog(loss=scores[iid], p_yes=[0.5, 0.9])
        trace = VlmTeachTrace(
            queries=Queries(goal="Is the goal reached?", process=["Is the wall intact?"]), query_source="teacher",
            loss_questions=["Is the goal reached?", "Is the wall intact?"], loss_roles=["goal", "process"],
            loss_weights=[0.5, 0.5], opt_step="first", lora_seed=k, per_step=[start, end], steps_used=1,
            stopped_early=k < 2, final_loss=end.loss, final_p_yes=end.p_yes)
        fields[iid] = {"scores": {"goal": float(k % 2)}, "trace": trace.to_dict()}
    return fields


def legacy_loop_trace(trace: dict) -> dict:
    """A vlmteach trace as records held it before VlmTeachTrace: the query source inside the queries, and no
    gradient norm or seconds on an evaluation that made no update."""
    steps = [{k: v for k, v in step.items() if v is not None} for step in trace["per_step"]]
    queries = {**trace["queries"], "source": trace["query_source"]}
    return {**{k: v for k, v in trace.items() if k != "query_source"}, "queries": queries, "per_step": steps}
