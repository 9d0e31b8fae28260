"""Is every planned instance done? ``python -m harness.status <sweep dir | run dir | folder>...``

Merges the shards of each run and checks every planned instance against the shard manifests
(``RunDir.completeness``: missing, errored, unscored, duplicated, unplanned, and bad videos: an ok
or generated record whose video is missing or not the file it recorded, by size and sha256) and the shard set
(every shard ``0..n-1`` has a manifest). A sweep directory (a multirun's ``hydra.sweep.dir``) is
expanded into its jobs, so a job that never started is reported too, with the command that runs it.
Prints a per-run, per-shard table and exactly what is missing; exits 1 when anything is
incomplete, 2 on bad input. ``--tables`` rewrites the tables of complete runs from all their shards.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from harness.rundir import Completeness, RunDir
from harness.types import UserError

CATEGORIES = ("missing", "errored", "unscored", "duplicated", "unplanned", "bad_videos")


@dataclass
class Job:
    """One job of a sweep: its number, its overrides and the run/shard it writes."""

    num: int
    overrides: list[str]
    run_path: Path | None
    shard: int
    num_shards: int
    error: str | None = None  # why its run directory could not be worked out

    @property
    def command(self) -> str:
        return "python -m harness.eval " + " ".join(shlex.quote(o) for o in self.overrides)


@dataclass
class ShardStatus:
    shard: int
    num_shards: int
    planned: list[str]
    problems: dict[str, list[str]]  # category -> ids of this shard

    @property
    def ok(self) -> int:
        bad = {i for c in ("missing", "errored", "unscored", "bad_videos") for i in self.problems[c]}
        return len(self.planned) - len(bad)


@dataclass
class RunStatus:
    path: Path
    completeness: Completeness | None
    shards: list[ShardStatus] = field(default_factory=list)
    missing_shards: list[tuple[int, int]] = field(default_factory=list)  # (shard, num_shards) without manifest
    notes: list[str] = field(default_factory=list)  # problems that are not per instance
    jobs: list[Job] = field(default_factory=list)  # sweep jobs writing here (empty for a bare run dir)

    @property
    def complete(self) -> bool:
        c = self.completeness
        return c is not None and c.complete and bool(c.planned) and not self.missing_shards and not self.notes


# -- one run -----------------------------------------------------------------------------------


def _manifest_files(run: RunDir) -> list[Path]:
    return sorted(run.path.glob("manifest*.json"))


def run_status(path: Path, expected_shards: set[tuple[int, int]] = frozenset()) -> RunStatus:
    """Status of one run directory, all shards merged. ``expected_shards`` adds shards a sweep planned."""
    run = RunDir(path)
    status = RunStatus(path=path, completeness=None)
    if not path.is_dir():
        status.notes.append("no run directory: no shard has started")
        status.missing_shards = sorted(expected_shards)
        return status
    unreadable = _unreadable_files(run)
    if unreadable:
        status.notes += unreadable
        return status
    manifests = run.manifests()
    status.completeness = c = run.completeness(check_videos=True)
    if not manifests:
        status.notes.append("no manifest: the planned instances are unknown (records without a plan)")
    for key in ("config_hash", "num_shards", "plan"):  # the plan: the instance list all shards cut their blocks from
        values = sorted({json.dumps(m[key], sort_keys=True) for m in manifests if key in m})
        if len(values) > 1:
            status.notes.append(f"shards disagree on {key}: {', '.join(values)}")
    present = {(int(m["shard"]), int(m["num_shards"])) for m in manifests}
    wanted = set(expected_shards) | {(s, n) for _, n in present for s in range(n)}
    status.missing_shards = sorted(wanted - present)
    by_category = {name: set(getattr(c, name)) for name in CATEGORIES}
    for m in sorted(manifests, key=lambda m: int(m["shard"])):
        ids = list(m["instance_ids"])
        problems = {name: sorted(by_category[name].intersection(ids)) for name in CATEGORIES if name != "unplanned"}
        problems["unplanned"] = []
        status.shards.append(ShardStatus(int(m["shard"]), int(m["num_shards"]), ids, problems))
    return status


def _unreadable_files(run: RunDir) -> list[str]:
    """A line per manifest or records file that does not parse (a crash mid-write), saying what to do."""
    from harness import records as rec
    from harness.rundir import read_manifest

    notes = []
    for path in _manifest_files(run):
        try:
            read_manifest(path)
        except UserError as exc:
            notes.append(str(exc))
    for path in run.records_files():
        try:
            rec.read_lines(path)
        except rec.CorruptRecordsError as exc:
            notes.append(str(exc))
    return notes


def explain_duplicates(run: RunDir, ids: list[str]) -> dict[str, str]:
    """For each duplicated id: which manifests plan it and which records files hold it."""
    from harness import records as rec

    planned = {i: [] for i in ids}
    for path in _manifest_files(run):
        for iid in set(ids).intersection(json.loads(path.read_text())["instance_ids"]):
            planned[iid].append(path.name)
    recorded = {i: [] for i in ids}
    for path in run.records_files():
        for iid in set(ids).intersection(rec.latest_by_instance(rec.read_lines(path))):
            recorded[iid].append(path.name)
    return {i: f"planned by {', '.join(planned[i]) or 'no manifest'}; recorded in {', '.join(recorded[i]) or 'no records file'}" for i in ids}


# -- sweeps ------------------------------------------------------------------------------------


def is_sweep_dir(path: Path) -> bool:
    return (path / "multirun.yaml").is_file()


def sweep_jobs(sweep_dir: Path) -> list[Job]:
    """Every job the sweep planned, numbered as Hydra's basic sweeper numbered them.

    A job's run directory is the one the job reported (``runs/<num>.txt``, written when it ends),
    else the one its config composes to now (relative output roots resolve against the cwd).
    """
    # The sweeper Hydra itself used, so the job numbers here are the sweep's job numbers.
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(sweep_dir / "multirun.yaml")
    sweeper = cfg.hydra.sweeper
    if not str(sweeper.get("_target_", "")).endswith("BasicSweeper"):
        raise UserError(f"{sweep_dir} was swept by {sweeper.get('_target_')}; status expands basic sweeps only. Pass its run directories instead.")
    args = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()] + list(cfg.hydra.overrides.task)
    try:
        batches = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(args), None)
    except Exception as exc:  # e.g. glob() needs the config loader
        raise UserError(f"cannot expand the sweep of {sweep_dir} ({exc}); pass its run directories instead.") from exc
    jobs = []
    for num, overrides in enumerate(batches[0]):
        job = _locate(num, overrides)
        pointer = sweep_dir / "runs" / f"{num:04d}.txt"
        if pointer.is_file():
            job.run_path, job.error = Path(pointer.read_text().strip()), None
        jobs.append(job)
    return jobs


def _locate(num: int, overrides: list[str]) -> Job:
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from harness.config import CONF_DIR, config_hash
    from harness.runner import run_dir_for

    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
        choices = dict(cfg.hydra.runtime.choices)
        with open_dict(cfg):
            del cfg["hydra"]
        path = run_dir_for(cfg, choices, config_hash(cfg)).path
        return Job(num, overrides, Path.cwd() / path, int(cfg.shard), int(cfg.num_shards))
    except Exception as exc:  # reported per job; the other jobs are still checked
        return Job(num, overrides, None, -1, -1, error=f"{type(exc).__name__}: {exc}")


# -- collecting ---------------------------------------------------------------------------------


def _run_dirs_below(path: Path) -> list[Path]:
    return sorted({p.parent for pattern in ("manifest*.json", "records*.jsonl") for p in path.rglob(pattern)})


def collect(paths: list[Path]) -> tuple[list[RunStatus], list[Job]]:
    """Run statuses for run dirs, sweep dirs and folders of run dirs; plus sweep jobs with no run dir."""
    expected: dict[Path, set[tuple[int, int]]] = {}
    jobs_of: dict[Path, list[Job]] = {}
    lost: list[Job] = []
    for path in paths:
        if not path.is_dir():
            raise UserError(f"{path} does not exist or is not a directory")
        if is_sweep_dir(path):
            for job in sweep_jobs(path):
                if job.run_path is None:
                    lost.append(job)
                    continue
                key = job.run_path.resolve()
                expected.setdefault(key, set())
                jobs_of.setdefault(key, []).append(job)
                if job.num_shards > 0:
                    expected[key].add((job.shard, job.num_shards))
            continue
        found = _run_dirs_below(path)
        if not found:
            raise UserError(f"no run directory (manifest*.json / records*.jsonl) in or below {path}, and no multirun.yaml")
        for run_path in found:
            expected.setdefault(run_path.resolve(), set())
    statuses = []
    for run_path, shards in expected.items():
        status = run_status(run_path, shards)
        status.jobs = sorted(jobs_of.get(run_path, []), key=lambda j: j.num)
        statuses.append(status)
    return statuses, lost


# -- printing -----------------------------------------------------------------------------------


def _ids(ids: list[str], max_ids: int) -> str:
    shown = ids if max_ids <= 0 else ids[:max_ids]
    more = f" ... and {len(ids) - len(shown)} more (--max-ids 0 lists all)" if len(shown) < len(ids) else ""
    return ", ".join(shown) + more


def _table(rows: list[list[str]]) -> list[str]:
    header = ["shard", "planned", "ok", "error", "unscored", "missing", "state"]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    last = len(header) - 1
    return ["  " + "  ".join(str(v).rjust(w) if 0 < i < last else str(v).ljust(w) for i, (v, w) in enumerate(zip(r, widths))).rstrip()
            for r in [header, *rows]]


def render(status: RunStatus, max_ids: int = 20) -> list[str]:
    lines = [f"{'complete  ' if status.complete else 'INCOMPLETE'}  {status.path}"]
    rows = []
    for s in status.shards:
        bad = any(s.problems[c] for c in CATEGORIES)
        rows.append([f"{s.shard}/{s.num_shards}", len(s.planned), s.ok, len(s.problems["errored"]), len(s.problems["unscored"]),
                     len(s.problems["missing"]), "INCOMPLETE" if bad else "complete"])
    for shard, n in status.missing_shards:
        rows.append([f"{shard}/{n}", "?", "-", "-", "-", "?", "NOT STARTED (no manifest)"])
    c = status.completeness
    if c is not None and (len(rows) > 1 or not rows):
        ok = len(set(c.planned).difference(c.missing, c.errored, c.unscored))
        rows.append(["all", len(c.planned), ok, len(c.errored), len(c.unscored), len(c.missing), "complete" if status.complete else "INCOMPLETE"])
    if rows:
        lines += _table(rows)
    lines += [f"  ! {note}" for note in status.notes]
    if c is not None:
        latest = RunDir(status.path).latest_records() if c.errored or c.bad_videos else {}
        for name in CATEGORIES:
            ids = getattr(c, name)
            if not ids:
                continue
            lines.append(f"  {name} ({len(ids)}): {_ids(ids, max_ids)}")
            if name == "errored":
                lines += [f"    {i}: [{latest[i].get('error_stage') or '?'}] {(latest[i].get('error') or '(no message recorded)')[:160]}"
                          for i in ids[: max_ids or None]]
            if name == "bad_videos":
                lines += [f"    {i}: {RunDir(status.path).video_problem(latest[i])}" for i in ids[: max_ids or None]]
                lines.append("    re-run the shard: it generates these videos again (and scores them)")
            if name == "duplicated":
                for iid, where in explain_duplicates(RunDir(status.path), ids[: max_ids or None]).items():
                    lines.append(f"    {iid}: {where}")
                lines.append("    an instance belongs to one shard: delete the stray lines (or files) of shards that do not plan it")
        if c.unscored:
            lines.append("  unscored instances have a video but no score yet: re-run with stage=score")
    unfinished = [j for j in status.jobs if not status.complete and _job_unfinished(status, j)]
    for job in unfinished:
        what = f"shard {job.shard}/{job.num_shards} (job {job.num})" if job.num_shards > 0 else f"job {job.num}"
        lines.append(f"  to finish {what}: {job.command}")
    if not status.complete and not status.jobs:
        lines.append("  to finish: re-run the command of each unfinished shard; instances recorded ok are skipped")
    return lines


def _job_unfinished(status: RunStatus, job: Job) -> bool:
    if (job.shard, job.num_shards) in status.missing_shards:
        return True
    shard = next((s for s in status.shards if (s.shard, s.num_shards) == (job.shard, job.num_shards)), None)
    return shard is None or any(shard.problems[c] for c in CATEGORIES)


def render_lost(job: Job) -> list[str]:
    return [f"INCOMPLETE  job {job.num}: run directory unknown ({job.error})", f"  to run it: {job.command}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.status", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, help="sweep directories, run directories, or folders holding run directories")
    parser.add_argument("--max-ids", type=int, default=20, help="ids listed per problem (0: all; default 20)")
    parser.add_argument("--tables", action="store_true", help="rewrite summary.json/table.md/table.csv of every complete run from all its shards")
    args = parser.parse_args(argv)
    try:
        statuses, lost = collect(args.paths)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for status in statuses:
        print("\n".join(render(status, args.max_ids)) + "\n")
    for job in lost:
        print("\n".join(render_lost(job)) + "\n")
    done = sum(s.complete for s in statuses)
    total = len(statuses) + len(lost)
    print(f"{done} of {total} runs complete")
    if args.tables:
        from harness.results.summary import write_run_tables

        for status in statuses:
            if status.complete:
                write_run_tables(status.path)
                print(f"tables written: {status.path / 'table.md'}")
    return 0 if done == total else 1


if __name__ == "__main__":
    sys.exit(main())
