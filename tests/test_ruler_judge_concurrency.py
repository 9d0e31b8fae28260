"""The RULER judge's requests in flight at once (``judge.max_concurrency``) and its token usage, through
``python -m harness.eval`` against the stub judge: the same verdicts, scores and cache one at a time or four at once;
usage in every record, summed over a run's fresh verdicts in summary.json, and shown in the tables."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmarks.ruler import LocalVlmJudge
from benchmarks.ruler.fixtures import write_tiny_release
from harness.chat_api import USAGE_KEYS
from harness.rundir import RunDir
from tests.cli import RULER_SIZE, StubJudgeProcess, harness_eval, run_cli, run_directory

pytestmark = pytest.mark.timeout(600)
N_SELECTED = 4  # the tiny release's instances in the paper's subset


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The tiny release, frozen videos generated once (not scored), and a stub judge that holds each reply 0.5 s."""
    tmp = tmp_path_factory.mktemp("concurrency")
    release = write_tiny_release(tmp / "data")
    generated = tmp / "generated"
    harness_eval("bench=ruler", f"bench.data_dir={release}", *RULER_SIZE, f"output_root={generated}", "method=frozen",
                 "stage=generate", "judge=none")
    stub = StubJudgeProcess(tmp, "--delay-s", "0.5")
    yield release, generated, stub
    stub.close()


def _score(setup, tmp: Path, name: str, *overrides: str) -> tuple[Path, str]:
    release, generated, stub = setup
    out = shutil.copytree(generated, tmp / name)
    proc = harness_eval("bench=ruler", f"bench.data_dir={release}", *RULER_SIZE, f"output_root={out}", "method=frozen",
                        "stage=score", f"judge.base_url={stub.base_url}", "judge.api_key_env=null", *overrides)
    return run_directory(proc.stdout), proc.stdout


def _verdicts(run: Path) -> dict[str, dict]:
    return {iid: {"score": r["score"], "scores": r["scores"], **{k: r["score_details"][k]
                                                                  for k in ("labels", "usage", "cached")}}
            for iid, r in RunDir(run).latest_records().items()}


def _cache(directory: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in directory.rglob("*.json")}


def test_four_requests_in_flight_give_what_one_at_a_time_gives(setup, tmp_path):
    stub = setup[2]
    one, out_one = _score(setup, tmp_path, "one", "judge.max_concurrency=1", f"judge.cache_dir={tmp_path / 'cache1'}")
    assert stub.stats()["max_in_flight"] == 1
    four, _ = _score(setup, tmp_path, "four", "judge.max_concurrency=4", f"judge.cache_dir={tmp_path / 'cache4'}")
    assert stub.stats()["max_in_flight"] > 1
    assert stub.stats()["chat_requests"] == 2 * N_SELECTED

    sequential, concurrent = _verdicts(one), _verdicts(four)
    assert len(sequential) == N_SELECTED and concurrent == sequential
    assert all(set(v["usage"]) == set(USAGE_KEYS) and v["usage"]["total_tokens"] > 0 and not v["cached"]
               for v in sequential.values())
    assert _cache(tmp_path / "cache4") == _cache(tmp_path / "cache1") and len(_cache(tmp_path / "cache1")) == N_SELECTED

    # The run's sum: every verdict fresh; the run's table says so.
    usage = json.loads((one / "summary.json").read_text())["judge_usage"]
    assert usage == json.loads((four / "summary.json").read_text())["judge_usage"]
    assert usage["verdicts"] == N_SELECTED and usage["cached_verdicts"] == 0
    assert usage["total_tokens"] == sum(v["usage"]["total_tokens"] for v in sequential.values())
    assert f"judge tokens: {usage['total_tokens']} " in out_one

    # Cached verdicts keep their original calls' usage, flagged, and the run's sum leaves them out.
    again, _ = _score(setup, tmp_path, "again", f"judge.cache_dir={tmp_path / 'cache1'}")
    assert stub.stats()["chat_requests"] == 2 * N_SELECTED
    cached = _verdicts(again)
    assert all(v["cached"] for v in cached.values())
    assert {k: v["usage"] for k, v in cached.items()} == {k: v["usage"] for k, v in sequential.items()}
    again_usage = json.loads((again / "summary.json").read_text())["judge_usage"]
    assert again_usage["verdicts"] == 0 and again_usage["cached_verdicts"] == N_SELECTED and again_usage["total_tokens"] == 0

    # The comparison's column: tokens of one instance's verdict.
    table = run_cli("python", "-m", "harness.table", str(one.parent)).stdout
    header = next(line for line in table.splitlines() if line.startswith("| method |"))
    assert header.rstrip(" |").endswith("judge tok/inst")


def test_a_local_judge_takes_one_request_at_a_time():
    with pytest.raises(ValueError, match="a local judge answers one request at a time"):
        LocalVlmJudge(teacher=None, model_id="m", max_concurrency=2)
