"""VBVR-Bench as a harness benchmark: released data in, official task-specific scores out."""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Sequence

from benchmarks.vbvr import data
from benchmarks.vbvr.aggregate import official_aggregate
from benchmarks.vbvr import tasks as task_table
from benchmarks.vbvr.official import OfficialScorer
from benchmarks.vbvr.protocol import GenerationProtocol
from harness.types import Instance, Score, ScoringError, UserError


class VbvrBenchmark:
    """I2V from each sample's first frame and prompt; scored by VBVR-EvalKit (task-specific mode).

    Data come from ``data_dir`` (a local copy of Video-Reason/VBVR-Bench-Data) or, when that is
    unset, from a snapshot of ``hub_id``. Generation settings follow ``protocol`` (see
    ``benchmarks.vbvr.protocol``). ``splits`` (id, ood) and ``tasks`` select a subset. ``score_workers`` > 1
    scores that many videos at once, each in a process of its own, while generation goes on.
    """

    name = "vbvr"
    score_settings = ("patch_safe_distance",)  # bench config keys that decide scores, not videos
    transport_settings = ("score_workers",)  # how scoring runs, not what it gives: in neither hash
    reference_table = "vbvr_table1"
    official_aggregate = staticmethod(official_aggregate)  # run_evaluation.py's means, honest about missing samples

    def __init__(
        self,
        *,
        data_dir: str | None = None,
        hub_id: str | None = data.HUB_ID,
        hub_revision: str | None = None,
        protocol: str = "official",
        num_frames: int | None = None,
        frames_4k1: bool = True,
        size: str = "first_frame",
        size_multiple: int = 32,
        fps: int = 16,
        splits: Sequence[str] = task_table.SPLITS,
        tasks: Sequence[str] | None = None,
        patch_safe_distance: bool = True,
        score_workers: int = 1,
    ):
        unknown_splits = set(splits) - set(task_table.SPLITS)
        if unknown_splits:
            raise UserError(f"bench.splits must be a subset of {list(task_table.SPLITS)}; got {sorted(unknown_splits)}")
        unknown_tasks = set(tasks or ()) - set(task_table.TASK_SPLIT)
        if unknown_tasks:
            raise UserError(f"bench.tasks names unknown VBVR-Bench tasks: {sorted(unknown_tasks)}")
        if score_workers < 1:
            raise UserError(f"bench.score_workers={score_workers}: give the number of scoring processes (>= 1)")
        self.data_dir = data_dir
        self.hub_id = hub_id
        self.hub_revision = hub_revision
        self.protocol = GenerationProtocol(name=protocol, num_frames=num_frames, frames_4k1=frames_4k1, size=size,
                                           size_multiple=size_multiple, fps=fps)
        self.splits = tuple(splits)
        self.tasks = None if tasks is None else tuple(tasks)
        self.scorer = OfficialScorer(patch_safe_distance=patch_safe_distance)
        self.score_workers = score_workers
        self._workers: ProcessPoolExecutor | None = None
        self._workers_lock = threading.Lock()
        self._instances: list[Instance] | None = None

    def instances(self) -> list[Instance]:
        if self._instances is None:
            root = data.resolve_root(self.data_dir, self.hub_id, self.hub_revision)
            selected = [
                s for s in data.read_samples(root)
                if s.split in self.splits and (self.tasks is None or s.task in self.tasks)
            ]
            self._instances = sorted((self._instance(s) for s in selected), key=lambda i: i.id)
        return self._instances

    def _instance(self, sample: data.Sample) -> Instance:
        first = sample.first_frame()
        height, width = self.protocol.frame_size(first.shape[0], first.shape[1])
        return Instance(
            id=task_table.instance_id(sample.task, sample.index),
            bench=self.name,
            task=sample.task,
            category=task_table.category(sample.task),
            split=sample.split,
            prompt=sample.prompt,
            num_frames=self.protocol.frame_count(sample.gt_video_path),
            height=height,
            width=width,
            fps=self.protocol.fps,
            first_frame=first,
            reference={  # judge-only: the GT the scorer compares against
                "index": sample.index,
                "source_id": sample.source_id,
                "gt_first_frame": str(sample.first_frame_path),
                "gt_final_frame": str(sample.final_frame_path),
                "gt_video": str(sample.gt_video_path),
            },
        )

    def video_relpath(self, instance: Instance) -> str:
        """``{In-Domain_50|Out-of-Domain_50}/{task}/{index:05d}.mp4``: what run_evaluation.py collects."""
        folder = task_table.SPLIT_FOLDERS[instance.split]
        return f"{folder}/{instance.task}/{instance.reference['index']:05d}.mp4"

    @property
    def score_concurrency(self) -> int:
        """Videos the runner may score at once (``score_workers``): the official scorers are CPU-bound Python,
        so each runs in a process of its own, not on a thread beside generation."""
        return self.score_workers

    def score(self, instance: Instance, video: Path) -> Score:
        ref = instance.reference
        kwargs = {"task": instance.task, "video": Path(video), "gt_first_frame": Path(ref["gt_first_frame"]),
                  "gt_final_frame": Path(ref["gt_final_frame"]), "gt_video": Path(ref["gt_video"]),
                  "prompt": instance.prompt}
        if self.score_workers == 1:
            score = self.scorer.score(**kwargs)
        else:
            try:
                score = self._worker_pool().submit(_score_in_worker, self.scorer.patch_safe_distance, kwargs).result()
            except BrokenProcessPool as exc:  # a worker killed (out of host memory): not a verdict, so not a 0
                self.close()
                raise ScoringError(f"the scoring process for {instance.id} ended abruptly ({exc}); "
                                   "the next run scores this video again") from exc
        score.details["protocol"] = self.protocol.describe()
        return score

    def _worker_pool(self) -> ProcessPoolExecutor:
        with self._workers_lock:
            if self._workers is None:  # spawned, not forked: the parent holds CUDA state
                self._workers = ProcessPoolExecutor(self.score_workers, mp_context=multiprocessing.get_context("spawn"))
            return self._workers

    def close(self) -> None:
        """Stop the scoring processes (the runner calls this when the run ends)."""
        with self._workers_lock:
            workers, self._workers = self._workers, None
        if workers is not None:
            workers.shutdown(wait=True, cancel_futures=True)


def _score_in_worker(patch_safe_distance: bool, kwargs: dict[str, Any]) -> Score:
    return OfficialScorer(patch_safe_distance=patch_safe_distance).score(**kwargs)

