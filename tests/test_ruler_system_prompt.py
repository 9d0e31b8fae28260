"""RULER's judge prompt: RULER-Bench's own by default, fetched beside the data; the paraphrase only by
choice, and then flagged as not comparable in summary.json, table.md, table.csv, comparisons and W&B."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.ruler import ApiJudge, RulerBenchmark, system_prompt
from benchmarks.ruler.download import fetch_system_prompt
from benchmarks.ruler.fixtures import STAND_IN_PROMPT, FakeChatServer, write_tiny_release
from harness import records as rec
from harness.results.compare import compare
from harness.results.summary import write_run_tables
from harness.rundir import RunDir
from harness.sinks import WandbSink
from harness.types import UserError
from harness.video import write_mp4

STAND_IN_SHA = hashlib.sha256(STAND_IN_PROMPT.encode()).hexdigest()
LABELS = '<think>ok</think><answer>["Good", "Medium"]</answer>'


@pytest.fixture
def release(tmp_path):
    return write_tiny_release(tmp_path / "ruler")


@pytest.fixture
def video(tmp_path):
    path = tmp_path / "v.mp4"
    write_mp4(path, np.full((17, 32, 32, 3), 80, np.uint8), fps=16)
    return path


def judge(server, tmp_path, **kw):
    return ApiJudge(base_url=server.base_url, api_key_env=None, max_retries=0, cache_dir=None, **kw)


def score_chess(release, tmp_path, video, **judge_kw):
    """The chess instance scored through the bench; returns (score details, the system message sent)."""
    with FakeChatServer([LABELS]) as server:
        bench = RulerBenchmark(data_dir=str(release), hub_id=None, judge=judge(server, tmp_path, **judge_kw))
        inst = next(i for i in bench.instances() if i.id == "ruler/chess/0")
        details = bench.score(inst, video).details
    return details, server.requests[0]["messages"][0]["content"]


def test_default_is_the_file_beside_the_data_and_only_upstreams_bytes_count_as_official(
        release, tmp_path, video, monkeypatch):
    details, sent = score_chess(release, tmp_path, video)
    assert sent == STAND_IN_PROMPT  # read from <data_dir>/eval/system_prompt.txt, not the paraphrase
    assert details["system_prompt"] == "modified"  # the stand-in is not upstream's file
    monkeypatch.setattr(system_prompt, "OFFICIAL_SHA256", STAND_IN_SHA)  # pretend it were
    details, _ = score_chess(release, tmp_path, video)
    assert details["system_prompt"] == "official" and details["system_prompt_sha256"] == STAND_IN_SHA


def test_missing_official_prompt_stops_before_generation_with_the_fetch_command(release, tmp_path):
    (release / system_prompt.OFFICIAL_RELPATH).unlink()
    with FakeChatServer() as server:
        bench = RulerBenchmark(data_dir=str(release), hub_id=None, judge=judge(server, tmp_path))
        with pytest.raises(UserError, match=r"make data BENCH=ruler.*benchmarks\.ruler\.download --data-dir"):
            bench.instances()
        hub = RulerBenchmark(data_dir=None, hub_id=None, judge=judge(server, tmp_path))
        with pytest.raises(UserError, match="bench.data_dir is not set"):
            hub.judge.use_data_dir(hub.data_dir)
    with pytest.raises(UserError, match="unset judge.system_prompt_path"):
        ApiJudge(system_prompt="paraphrase", system_prompt_path="x.txt", api_key_env=None)
    with pytest.raises(UserError, match="choose one of"):
        ApiJudge(system_prompt="ours", api_key_env=None)


def test_download_writes_only_the_pinned_bytes(tmp_path, monkeypatch):
    source = tmp_path / "upstream.txt"
    source.write_bytes(STAND_IN_PROMPT.encode())
    with pytest.raises(UserError, match="not the pinned"):
        fetch_system_prompt(tmp_path / "data", url=source.as_uri())
    assert not (tmp_path / "data" / system_prompt.OFFICIAL_RELPATH).exists()
    monkeypatch.setattr("benchmarks.ruler.download.OFFICIAL_SHA256", STAND_IN_SHA)
    written = fetch_system_prompt(tmp_path / "data", url=source.as_uri())
    assert written == tmp_path / "data" / "eval" / "system_prompt.txt" and written.read_bytes() == source.read_bytes()
    assert system_prompt.OFFICIAL_URL.endswith(f"/{system_prompt.OFFICIAL_COMMIT}/eval/system_prompt.txt")


def write_ruler_run(path: Path, method: str, details: dict) -> Path:
    run = RunDir(path)
    path.mkdir(parents=True)
    run.config_path.write_text(f"seed: 0\nmethod:\n  label: {method}\nbench:\n  _target_: benchmarks.ruler.RulerBenchmark\n")
    ids = ["ruler/chess/0", "ruler/physics/1"]
    manifest = {"bench": "ruler", "method": method, "config_hash": f"h-{method}", "shard": 0, "num_shards": 1,
                "instance_ids": ids}
    run.manifest_path(0, 1).write_text(json.dumps(manifest))
    for iid, cat, score in (("ruler/chess/0", "game", 75.0), ("ruler/physics/1", "science", 50.0)):
        record = rec.Record(instance_id=iid, bench="ruler", task=iid.split("/")[1], category=cat, split="test",
                            method=method, seed=0, status="ok", score=score,
                            scores={"IF": 1.0, "VC": 2.0, "VF": 1.0, "RC": 1.0},
                            score_details=details, config_hash=f"h-{method}")
        rec.append(run.records_path(0, 1), record)
    return path


def test_paraphrase_is_flagged_in_summary_tables_comparison_and_wandb(release, tmp_path, video, monkeypatch):
    paraphrased, sent = score_chess(release, tmp_path, video, system_prompt="paraphrase")
    assert sent == system_prompt.PARAPHRASE_PATH.read_text() and paraphrased["system_prompt"] == "paraphrase"
    flagged = write_ruler_run(tmp_path / "runs" / "para", "frozen", paraphrased)
    official = write_ruler_run(tmp_path / "runs" / "off", "vlmteach", {**paraphrased, "system_prompt": "official"})

    summary, markdown, frame = write_run_tables(flagged)
    (warning,) = summary["warnings"]
    assert warning.startswith("JUDGE PROMPT NOT OFFICIAL: 2 paraphrase of 2 verdicts") and "not comparable" in warning
    assert json.loads((flagged / "summary.json").read_text())["warnings"] == [warning]
    assert markdown.splitlines()[2] == f"**WARNING: {warning}**"  # right under the run's heading
    assert set(frame["warnings"]) == {warning}
    assert write_run_tables(official)[0]["warnings"] == []

    table, _ = compare([flagged, official])
    assert "frozen [NOT COMPARABLE: see warning]" in table and f"**WARNING: {warning}**" in table
    assert "vlmteach [NOT COMPARABLE" not in table

    class FakeRun:
        def __init__(self):
            self.summary = {}

        def log(self, data):
            pass

        def finish(self, exit_code=None):
            pass

    sink = WandbSink(project="p", mode="disabled")
    sink._run = fake = FakeRun()
    sink.finish(flagged, summary, frame, [])
    assert fake.summary["warnings"] == warning


def test_records_without_a_recorded_prompt_are_flagged_too(tmp_path):
    run = write_ruler_run(tmp_path / "old", "frozen", {"judge": "o3"})  # written before the choice existed
    assert write_run_tables(run)[0]["warnings"][0].startswith("JUDGE PROMPT NOT OFFICIAL: 2 unrecorded of 2")
