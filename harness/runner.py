"""Runs one method over one benchmark shard: generate -> score -> append a record, resumable.

Resume rules: an instance whose latest record is ``ok`` (a finite score, its video as recorded) is
skipped; an error or a deferred score is retried. A retry reuses the saved video when it is still the
one the record names (size and sha256) and readable; otherwise the video is generated again.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import math
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from harness import records as rec
from harness.config import Stage, component_kwargs, config_hash, method_needs_teacher, score_hash, validate_run_settings
from harness.fingerprint import changed_weights, weights_fingerprint
from harness.method import MethodContext
from harness.progress import Progress
from harness.rundir import RunDir, atomic_write_text, file_sha256
from harness.score_pool import ScorePool
from harness.seeding import derive_seed
from harness.shard_lock import shard_lock
from harness.sharding import select_shard
from harness.types import Benchmark, Instance, MethodFailed, MethodOutput, Score, ScoringError, UserError
from harness.versions import collect_versions
from harness.video import CorruptVideoError, temp_prefix, write_mp4, write_preview

log = logging.getLogger(__name__)

# What staging an instance gives: its final record, or the arguments of ``Runner._score``.
Staged = rec.Record | tuple[Instance, Path, rec.Record]


@dataclass
class _Job:
    """An instance whose video is to be generated: where it goes, and the record it completes."""

    instance: Instance
    seed: int
    video: Path
    relpath: Path
    record: rec.Record


def generation_shape(instance: Instance) -> tuple[int, int, int, bool]:
    """What instances generated as one batch share: frames, height, width, and text-to-video or not."""
    return instance.num_frames, instance.height, instance.width, instance.first_frame is None


def generation_groups(instances: list[Instance], size: int) -> Iterator[list[Instance]]:
    """``instances`` in order, cut into runs of at most ``size`` consecutive ones of one generation shape."""
    group: list[Instance] = []
    for instance in instances:
        if group and (len(group) == size or generation_shape(instance) != generation_shape(group[0])):
            yield group
            group = []
        group.append(instance)
    if group:
        yield group


def build(cfg: DictConfig, group: str) -> Any:
    """Instantiate a component; a UserError inside (e.g. missing weights) surfaces as itself, and a
    constructor's ValueError (a bad value: ``method.tau=-1``) as a UserError naming the group."""
    try:
        return instantiate(component_kwargs(cfg, group), _convert_="all")
    except Exception as exc:
        cause = _cause(exc, UserError)
        if cause is not None:
            raise cause from None
        bad_value = _cause(exc, ValueError)
        if bad_value is not None:
            raise UserError(f"{group}: {bad_value} (check the {group}.* settings)") from exc
        raise


def run_dir_for(cfg: DictConfig, choices: dict[str, str], chash: str) -> RunDir:
    """``<output_root>/<bench>/<method>/<run>``: the config groups' chosen names, and the generation hash; a run
    of the first n instances only (``limit``) is a run of its own, so a trial never blocks or mixes with the whole."""
    first = f"-first{cfg.limit}" if cfg.limit is not None else ""
    name = cfg.run_name or f"{choices['student']}-{choices['teacher']}-{chash}{first}"
    return RunDir(Path(cfg.output_root) / choices["bench"] / choices["method"] / name)


def _check_same_config(run: RunDir, chash: str, num_shards: int, weights: dict[str, str]) -> None:
    for manifest in run.manifests():
        if manifest["config_hash"] != chash:
            raise UserError(
                f"{run.path} holds records of config {manifest['config_hash']}, but this config is {chash}. "
                "Results of different configs are never mixed: choose another run_name or remove that directory."
            )
        changed = changed_weights(manifest.get("weights", weights), weights)
        if changed:
            raise UserError(
                f"{run.path} holds records made with other weights at {', '.join(changed)} (the files changed since). "
                "Results of different weights are never mixed: choose another run_name or remove that directory."
            )
        if manifest["num_shards"] != num_shards:
            raise UserError(
                f"{run.path} was planned with num_shards={manifest['num_shards']}, not {num_shards}: keep the shard "
                f"count of a run fixed (-m num_shards={manifest['num_shards']} 'shard=range(0,{manifest['num_shards']})'), "
                "or give this one another run_name=..."
            )


def _check_same_scorer(run: RunDir, latest: dict[str, dict[str, Any]], shash: str) -> None:
    """Videos are shared across scorer settings (score later with another judge), scores are not mixed."""
    other = sorted({r["score_hash"] for r in latest.values() if r.get("status") == rec.STATUS_OK and r.get("score_hash", shash) != shash})
    if other:
        raise UserError(
            f"{run.path} holds scores made with other scorer settings ({', '.join(other)}; this config: {shash}), "
            "for example another judge model or prompt. Scores of different judges are never mixed in one run: "
            "score with the earlier settings, or generate into another run (run_name=...)."
        )


def plan(bench: Benchmark, limit: int | None) -> list[Instance]:
    """The run's instances, before sharding: the first ``limit`` by sorted id. Every shard cuts its block from this."""
    instances = bench.instances()
    ids = [i.id for i in instances]
    if len(set(ids)) != len(ids):
        raise UserError(f"benchmark {bench.name} has duplicate instance ids")
    return sorted(instances, key=lambda i: i.id)[:limit]


def plan_summary(instances: list[Instance], limit: int | None) -> dict[str, Any]:
    """What the shards of one run must agree on: the list they all cut their blocks from."""
    digest = hashlib.sha256("\n".join(i.id for i in instances).encode()).hexdigest()
    return {"limit": limit, "instances": len(instances), "ids_sha256": digest}


def _check_same_plan(run: RunDir, shard: int, summary: dict[str, Any]) -> None:
    """Shards planned from different lists (another limit, another data version) would leave silent gaps."""
    for manifest in run.manifests():
        other = manifest.get("plan")
        if manifest["shard"] != shard and other is not None and other != summary:
            raise UserError(
                f"{run.path}: shard {manifest['shard']} was planned from {other['instances']} instances "
                f"(limit={other['limit']}, ids sha256 {other['ids_sha256'][:12]}), this shard from "
                f"{summary['instances']} (limit={summary['limit']}, ids sha256 {summary['ids_sha256'][:12]}). "
                "All shards of a run cut their blocks from one list of instances: run this shard with the other "
                "shards' limit (and data), or start another run (run_name=...)."
            )


class Runner:
    def __init__(self, cfg: DictConfig, choices: dict[str, str]):
        validate_run_settings(cfg)
        self.cfg = cfg
        self.chash, self.score_hash = config_hash(cfg), score_hash(cfg)
        self.method_label = choices["method"]  # the method config's name: run directories and tables use it
        self.shard, self.num_shards = int(cfg.shard), int(cfg.num_shards)
        self.run = run_dir_for(cfg, choices, self.chash)
        self.records_path = self.run.records_path(self.shard, self.num_shards)
        self.versions = collect_versions()
        self.bench: Benchmark = build(cfg, "bench")
        self.method = build(cfg, "method")
        self._student = None
        self._teacher = None
        self.unfinished: dict[str, str] = {}  # after execute: this shard's instances not done -> their status

    # Models are built only when an instance actually needs generation (a resume that has
    # nothing left to generate never loads weights).
    @property
    def student(self):
        if self._student is None:
            self._student = build(self.cfg, "student")
        return self._student

    @property
    def teacher(self):
        if self._teacher is None and method_needs_teacher(self.cfg):
            self._teacher = build(self.cfg, "teacher")
        return self._teacher

    def release_models(self) -> None:
        """Drop the student and teacher and give their accelerator memory back (a multirun's jobs share a process)."""
        if self._student is None and self._teacher is None:
            return
        self._student = self._teacher = None
        gc.collect()
        if torch.cuda.is_initialized():
            torch.cuda.empty_cache()

    @property
    def label(self) -> str:
        """The method, and its shard when there are several: what the progress bar and a sweep's lines call this run."""
        shard = f" shard {self.shard}/{self.num_shards}" if self.num_shards > 1 else ""
        return f"{self.method_label}{shard}"

    def prepare(self) -> list[Instance]:
        """Check the run directory against this config and plan, then write this shard's manifest (under its lock)."""
        run_plan = plan(self.bench, self.cfg.limit)
        instances = select_shard(run_plan, self.shard, self.num_shards)
        weights = weights_fingerprint(OmegaConf.to_container(self.cfg, resolve=True))
        _check_same_config(self.run, self.chash, self.num_shards, weights)
        summary = plan_summary(run_plan, self.cfg.limit)
        _check_same_plan(self.run, self.shard, summary)
        for instance in instances:  # temp files of writers killed mid-encode; other shards' are left alone
            video = self.run.videos / self.bench.video_relpath(instance)
            for written in (video, self.run.preview_of(video)):
                for stale in written.parent.glob(f"{temp_prefix(written)}*"):
                    stale.unlink()
        atomic_write_text(self.run.config_path, OmegaConf.to_yaml(self.cfg, resolve=True))  # shards write it too
        manifest = {
            "bench": self.bench.name,
            "method": self.method_label,
            "config_hash": self.chash,
            "score_hash": self.score_hash,
            "shard": self.shard,
            "num_shards": self.num_shards,
            "weights": weights,
            "plan": summary,
            "instance_ids": [i.id for i in instances],
            # lets tables count a missing instance in its task/category/split rows
            "instance_groups": {i.id: {"task": i.task, "category": i.category, "split": i.split} for i in instances},
            # lets tables read the traces back typed, and audit them (harness.results.runs)
            "trace": None if self.method.trace_type is None else self.method.trace_type.import_path(),
        }
        atomic_write_text(self.run.manifest_path(self.shard, self.num_shards), json.dumps(manifest, indent=1))
        return instances

    def execute(self, sink) -> RunDir:
        _make_dir(self.run.path, self.cfg.output_root)
        with shard_lock(self.run.path, self.shard, self.num_shards):
            return self._execute(sink)

    def _execute(self, sink) -> RunDir:
        instances = self.prepare()
        latest = rec.latest_by_instance(rec.read_lines(self.records_path))
        _check_same_scorer(self.run, latest, self.score_hash)
        done = {i.id for i in instances if self._done(latest.get(i.id))}
        todo = [i for i in instances if i.id not in done]
        if self.cfg.stage == Stage.score:
            todo = [i for i in todo if i.id in latest]
        log.info("%s: %d planned, %d already ok, %d to run", self.run.path, len(instances), len(instances) - len(todo), len(todo))
        sink.start(self.run.path, OmegaConf.to_container(self.cfg, resolve=True), self.run.path.name)
        done_scores = [latest[i]["score"] for i in sorted(done)]
        progress = Progress(total=len(instances), done=len(instances) - len(todo), scores=done_scores,
                            enabled=self.cfg.progress, label=self.label)
        statuses = {i.id: rec.STATUS_OK if i.id in done else latest.get(i.id, {}).get("status", "missing") for i in instances}

        def finish(record: rec.Record) -> None:  # this thread alone writes records
            rec.append(self.records_path, record)
            statuses[record.instance_id] = record.status
            sink.log_record(json.loads(record.to_json()))
            progress.update(record.score if record.status == rec.STATUS_OK else None, record.status)

        # Scores of up to score_concurrency instances at once (a judge's requests in flight), generation meanwhile.
        pool = ScorePool(getattr(self.bench, "score_concurrency", 1))
        try:
            for group in generation_groups(todo, self.method.batch_instances):
                for staged in self.stage_group(group, latest):
                    for record in [staged] if isinstance(staged, rec.Record) else pool.submit(self._score, *staged):
                        finish(record)
            for record in pool.drain():
                finish(record)
        finally:
            pool.close()
            close_bench = getattr(self.bench, "close", None)  # its scoring resources (VBVR's worker processes)
            if close_bench is not None:
                close_bench()
            progress.close()
        finished = (rec.STATUS_OK, rec.STATUS_GENERATED) if self.cfg.stage == Stage.generate else (rec.STATUS_OK,)
        self.unfinished = {iid: status for iid, status in statuses.items() if status not in finished}
        return self.run

    def unfinished_summary(self) -> str:
        """'' when every instance of this shard is done (ok; generated for stage=generate), else '2 error, 1 missing'."""
        counts = Counter(self.unfinished.values())
        return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))

    def _done(self, row: dict[str, Any] | None) -> bool:
        """Ok with a finite score, and its video still the one recorded (else it is scored or generated again)."""
        if row is None or row["status"] != rec.STATUS_OK:
            return False
        problem = "a non-finite score" if not math.isfinite(row["score"]) else self.run.video_problem(row)
        if problem:
            log.warning("%s was recorded ok, but %s: running it again", row["instance_id"], problem)
        return problem is None

    def stage_group(self, instances: list[Instance], latest: dict[str, dict[str, Any]]) -> list[Staged]:
        """Generate (or reuse) the videos of instances of one generation shape, those to be generated by one
        ``method.run_many`` call; per instance its final record where nothing is to be scored (an error,
        stage=generate), else the arguments of ``_score``."""
        planned = [self._plan(instance, latest.get(instance.id)) for instance in instances]
        generated = iter(self._generate([p for p in planned if isinstance(p, _Job)]))
        return [self._staged(next(generated), p) if isinstance(p, _Job) else p for p in planned]

    def _plan(self, instance: Instance, previous: dict[str, Any] | None) -> Staged | _Job:
        """What an instance needs: its video reused (then staged at once), nothing to score, or a generation."""
        seed = derive_seed(int(self.cfg.seed), instance.id)
        relpath = Path("videos") / self.bench.video_relpath(instance)
        video = self.run.path / relpath
        record = rec.Record(
            instance_id=instance.id, bench=self.bench.name, task=instance.task, category=instance.category,
            split=instance.split, method=self.method_label, seed=seed, status=rec.STATUS_ERROR,
            config_hash=self.chash, score_hash=self.score_hash, versions=self.versions, shard=f"{self.shard}/{self.num_shards}",
            oracle=type(self.method).is_oracle,
        )
        job = _Job(instance, seed, video, relpath, record)
        video_problem = self.run.video_problem(previous) if previous and previous.get("video") else "no video recorded"
        if video_problem is None:  # reuse: a deferred or failed score, or an ok record scored again
            prior = rec.Record.from_dict(previous)
            return self._staged(replace(record, video=str(relpath), **_fingerprint(video), trace=prior.trace,
                                        steps=prior.steps, timings=dict(prior.timings)), job)
        if self.cfg.stage == Stage.score:
            return replace(record, error=f"nothing to score: {video_problem}; generate it again with stage=all "
                                         "(the same command otherwise)", error_stage="score")
        return job

    def _staged(self, record: rec.Record, job: _Job) -> Staged:
        if record.error_stage == "generate":
            return record
        if self.cfg.stage == Stage.generate:
            return replace(record, status=rec.STATUS_GENERATED, error=None, error_stage=None)
        return job.instance, job.video, record

    def _generate(self, jobs: list[_Job]) -> list[rec.Record]:
        """The jobs' records once their videos are made: one at a time, or as one batch (``method.run_many``).
        A batch that fails as a whole (out of memory) runs again one instance at a time."""
        if not jobs:
            return []
        # Outside the per-instance guard: a model that cannot load fails the run once, clearly,
        # instead of recording the same error for every instance.
        student, teacher = self.student, self.teacher
        if len(jobs) == 1:
            return [self._generate_one(jobs[0])]
        reset_peak_gpu_memory()
        start = time.perf_counter()
        ctxs = [MethodContext(student=student, teacher=teacher, bench=self.bench, seed=job.seed) for job in jobs]
        try:
            outcomes = self.method.run_many([job.instance for job in jobs], ctxs)
        except Exception as exc:
            if isinstance(exc, UserError) or self.cfg.fail_fast:
                raise
            log.warning("a batch of %d instances failed as a whole (%s): running them one at a time",
                        len(jobs), _describe(exc))
            _free_accelerator_memory(exc)
            return [self._generate_one(job) for job in jobs]
        batch_s = time.perf_counter() - start
        # Its share of the batch is an instance's cost: tables then count seconds per instance as one at a time.
        shared = {"generate_s": batch_s / len(jobs), "batch_s": batch_s, **peak_gpu_memory()}
        return [self._record_outcome(job, outcome, lambda: shared) for job, outcome in zip(jobs, outcomes, strict=True)]

    def _generate_one(self, job: _Job) -> rec.Record:
        reset_peak_gpu_memory()
        start = time.perf_counter()
        try:
            ctx = MethodContext(student=self.student, teacher=self.teacher, bench=self.bench, seed=job.seed)
            outcome = self.method.run(job.instance, ctx)
        except Exception as exc:  # noqa: BLE001 - recorded as its error (_failed)
            outcome = exc
        return self._record_outcome(job, outcome, lambda: {"generate_s": time.perf_counter() - start, **peak_gpu_memory()})

    def _record_outcome(self, job: _Job, outcome: MethodOutput | Exception,
                        cost: Callable[[], dict[str, float]]) -> rec.Record:
        """The job's record from its method outcome: its video written, or its failure. ``cost()``: the
        generation's seconds and peak memory, taken once the video is written."""
        if isinstance(outcome, Exception):
            return self._failed(job, outcome, cost)
        try:
            write_mp4(job.video, outcome.clip, fps=job.instance.fps)
        except Exception as exc:
            return self._failed(job, exc, cost)
        timings = {**outcome.timings, **cost()}
        trace = outcome.trace.to_dict() if outcome.trace is not None else {}
        self._write_preview(job.video)
        return replace(job.record, video=str(job.relpath), **_fingerprint(job.video), trace=trace, steps=outcome.steps,
                       timings=timings)

    def _failed(self, job: _Job, exc: Exception, cost: Callable[[], dict[str, float]]) -> rec.Record:
        """Any per-instance failure is recorded, never dropped (a user error or fail_fast stops the run instead)."""
        failure, partial = (exc.cause, exc.trace.to_dict()) if isinstance(exc, MethodFailed) else (exc, {})
        if isinstance(failure, UserError):
            raise failure from None
        if self.cfg.fail_fast:
            raise exc
        timings = cost()
        _free_accelerator_memory(failure)
        return replace(job.record, error=_describe(failure), error_stage="generate", timings=timings, trace=partial)

    def _write_preview(self, video: Path) -> None:
        """The browser-playable copy (``RunDir.previews``); a failure costs only the preview, which
        ``python -m harness.report`` makes again from the saved video."""
        try:
            write_preview(video, self.run.preview_of(video))
        except Exception as exc:  # noqa: BLE001 - the scored video is written; the preview is a convenience
            self.run.preview_of(video).unlink(missing_ok=True)  # never a former video's
            log.warning("no preview of %s: %s", video, _describe(exc))

    def _score(self, instance: Instance, video: Path, record: rec.Record) -> rec.Record:
        t0 = time.perf_counter()
        try:
            score = self.bench.score(instance, video)
            _check_finite(instance, score)
        except Exception as exc:
            if self.cfg.fail_fast or isinstance(exc, UserError):  # e.g. a judge nobody answers for: stop once
                raise
            timings = {**record.timings, "score_s": time.perf_counter() - t0}
            if _cause(exc, CorruptVideoError):  # an unreadable video is never reused: the next run makes it again
                return replace(record, error=f"{_describe(exc)}; the video is unreadable: the next run with stage=all "
                                             "generates it again", error_stage="score", timings=timings,
                               video=None, video_bytes=None, video_sha256=None)
            return replace(record, error=_describe(exc), error_stage="score", timings=timings)
        timings = {**record.timings, "score_s": time.perf_counter() - t0}
        timings["total_s"] = timings.get("generate_s", 0.0) + timings["score_s"]
        return replace(record, status=rec.STATUS_OK, error=None, error_stage=None, score=float(score.score),
                       scores={k: float(v) for k, v in score.scores.items()}, score_details=score.details,
                       timings=timings)


def _make_dir(path: Path, output_root: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot write the run directory {path} ({exc.strerror or exc}): output_root={output_root} "
                        "must be a folder you can create and write to; set output_root=... to another one") from None


def _fingerprint(video: Path) -> dict[str, Any]:
    return {"video_bytes": video.stat().st_size, "video_sha256": file_sha256(video)}


def _check_finite(instance: Instance, score: Score) -> None:
    values = {"score": score.score, **score.scores}
    bad = {k: v for k, v in values.items() if not math.isfinite(float(v))}
    if bad:
        raise ScoringError(f"{instance.id}: the scorer returned non-finite values {bad}; recorded as an error, not a score")


def _cause(exc: BaseException | None, kind: type[BaseException]) -> BaseException | None:
    """``exc`` or the first of its causes that is a ``kind``."""
    while exc is not None and not isinstance(exc, kind):
        exc = exc.__cause__
    return exc


def _describe(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {tb[-1].filename.split('/')[-1]}:{tb[-1].lineno})" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"


def reset_peak_gpu_memory() -> None:
    """Start this instance's peak: only where the models put CUDA to use (a CPU run never starts it)."""
    if torch.cuda.is_initialized():
        torch.cuda.reset_peak_memory_stats()


def peak_gpu_memory() -> dict[str, float]:
    """``{"peak_gpu_mem_gib": ...}``: the most GPU memory tensors held since ``reset_peak_gpu_memory`` (the current
    device's ``max_memory_allocated``); empty where CUDA is not in use."""
    if not torch.cuda.is_initialized():
        return {}
    return {"peak_gpu_mem_gib": torch.cuda.max_memory_allocated() / 2**30}


def _free_accelerator_memory(exc: BaseException) -> None:
    if isinstance(exc, torch.OutOfMemoryError) and torch.cuda.is_available():
        torch.cuda.empty_cache()
