"""Bad input to ``python -m harness.eval`` on the real benchmarks: a clear error naming the file and what is
wrong (exit code 2, before any model loads), or, for a judge that cannot be reached, a recorded error."""

from __future__ import annotations

import re
import shutil
import socket
import struct
import zlib
from pathlib import Path

import pytest

from benchmarks.make_tiny import write_tiny
from benchmarks.ruler.fixtures import write_tiny_release
from benchmarks.vbvr import VbvrBenchmark
from harness.rundir import RunDir
from harness.types import UserError
from tests.cli import RULER_SIZE, VBVR_SIZE, harness_eval, run_directory


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return write_tiny_release(tmp_path_factory.mktemp("ruler"))


def _broken_copy(release: Path, tmp_path: Path, breaks) -> Path:
    copy = shutil.copytree(release, tmp_path / "ruler")
    breaks(copy)
    return copy


def _replace_in_data(old: str, new: str):
    def edit(root: Path) -> None:
        data = root / "data.jsonl"
        data.write_text(data.read_text().replace(old, new, 1))
    return edit


BROKEN_RULER = {  # what breaks the copy of the release, and what the message must say
    "missing dir": (lambda root: shutil.rmtree(root), r"no RULER-Bench data.jsonl .* under .*ruler.*make data BENCH=ruler"),
    "empty dir": (lambda root: [p.unlink() if p.is_file() else shutil.rmtree(p) for p in root.iterdir()],
                  r"no RULER-Bench data.jsonl .* under .*ruler.*make data BENCH=ruler"),
    "malformed line": (_replace_in_data('{"task_name": "physics", "category": "science", "index": 1', '{"task_name": physics'),
                       r"ruler/data.jsonl:2 is not valid JSON"),
    "unknown metric": (_replace_in_data("Rule Coherence", "Rule Coherense"),
                       r"record 1 \(physics/0\) under .*ruler: unknown checklist metric 'Rule Coherense'"),
    "missing media": (lambda root: (root / "images" / "physics_0.png").unlink(),
                      r"media files are missing \(.*ruler/images/physics_0.png\)"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_RULER))
def test_broken_ruler_data_is_a_clear_error_before_any_model_loads(case, release, tmp_path):
    breaks, message = BROKEN_RULER[case]
    data = _broken_copy(release, tmp_path, breaks)
    proc = harness_eval("bench=ruler", "method=frozen", f"bench.data_dir={data}", f"output_root={tmp_path / 'runs'}", expect=2)
    assert re.search(message, proc.stdout), proc.stdout[-2000:]
    assert "Traceback" not in proc.stdout and "Loading weights" not in proc.stdout


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_a_missing_or_empty_vbvr_data_dir_says_how_to_download(make, tmp_path):
    data = tmp_path / "VBVR-Bench"
    if make == "empty":
        data.mkdir()
    proc = harness_eval("bench=vbvr", f"bench.data_dir={data}", *VBVR_SIZE, f"output_root={tmp_path / 'runs'}", expect=2)
    said = f"VBVR-Bench data directory {data} does not exist" if make == "missing" else f"no VBVR-Bench samples found under {data}"
    assert said in proc.stdout, proc.stdout[-2000:]
    assert "make data BENCH=vbvr" in proc.stdout and "Traceback" not in proc.stdout


def _png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (PIL checks the size on open, before any pixel)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")


BROKEN_FIRST_FRAMES = {  # what the first frame's file holds, and what PIL says of it
    "truncated": (lambda png: png.write_bytes(png.read_bytes()[: png.stat().st_size // 2]), r"OSError: image file is truncated"),
    "not an image": (lambda png: png.write_text("<html>rate limited</html>"), r"UnidentifiedImageError"),
    # 20000^2 is over PIL's decompression-bomb limit: at 16384^2 the GPU run's out-of-memory probe stopped there
    "over PIL's pixel limit": (lambda png: png.write_bytes(_png_header_claiming(20000, 20000)), r"DecompressionBombError"),
}


def _broken_first_frame(case: str, tmp_path: Path) -> tuple[Path, Path]:
    data = write_tiny("vbvr", tmp_path / "VBVR-Bench")
    png = sorted(data.glob("*/*/00000/first_frame.png"))[0]
    BROKEN_FIRST_FRAMES[case][0](png)
    return data, png


@pytest.mark.parametrize("case", sorted(BROKEN_FIRST_FRAMES))
def test_an_unreadable_vbvr_first_frame_is_named(case, tmp_path):
    data, png = _broken_first_frame(case, tmp_path)
    with pytest.raises(UserError, match=rf"cannot read the first frame {re.escape(str(png))}: {BROKEN_FIRST_FRAMES[case][1]}"):
        VbvrBenchmark(data_dir=str(data)).instances()


def test_an_unreadable_vbvr_first_frame_stops_the_cli_before_any_model_loads(tmp_path):
    data, png = _broken_first_frame("over PIL's pixel limit", tmp_path)
    proc = harness_eval("bench=vbvr", "method=frozen", f"bench.data_dir={data}", *VBVR_SIZE,
                        f"output_root={tmp_path / 'runs'}", expect=2)
    assert f"cannot read the first frame {png}: DecompressionBombError" in proc.stdout, proc.stdout[-2000:]
    assert "make data BENCH=vbvr" in proc.stdout and "Traceback" not in proc.stdout and "Loading weights" not in proc.stdout


def test_a_missing_api_key_keeps_the_videos_and_records_which_variable_to_set(release, tmp_path, monkeypatch):
    monkeypatch.delenv("RULER_TEST_KEY", raising=False)
    proc = harness_eval("bench=ruler", "method=frozen", f"bench.data_dir={release}", *RULER_SIZE, "limit=2",
                        "judge.api_key_env=RULER_TEST_KEY", f"judge.cache_dir={tmp_path / 'cache'}",
                        f"output_root={tmp_path / 'runs'}", expect=3)  # 3: finished, incomplete
    run = run_directory(proc.stdout)
    records = RunDir(run).latest_records()
    assert len(records) == 2 and {(r["status"], r["error_stage"]) for r in records.values()} == {("error", "score")}
    assert all("RULER_TEST_KEY is not set" in r["error"] for r in records.values())
    assert len(list((run / "videos").rglob("*.mp4"))) == 2  # kept: `stage=score` scores them once the key is set


def test_a_judge_nobody_answers_for_stops_the_run_once(release, tmp_path):
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        base_url = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    proc = harness_eval("bench=ruler", "method=frozen", f"bench.data_dir={release}", *RULER_SIZE, "limit=2",
                        f"judge.base_url={base_url}", "judge.api_key_env=null", "judge.max_retries=1", "judge.backoff_s=0",
                        # one score at a time: with more, videos generated while the first score was in flight are kept too
                        "judge.max_concurrency=1",
                        f"judge.cache_dir={tmp_path / 'cache'}", f"output_root={tmp_path / 'runs'}", expect=2)
    assert base_url.removesuffix("/v1") in proc.stdout and "Start the server or fix base_url" in proc.stdout
    run = next((tmp_path / "runs" / "ruler" / "frozen").iterdir())
    assert len(list((run / "videos").rglob("*.mp4"))) == 1  # the first video is kept; the run stopped at its score
