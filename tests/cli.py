"""Running the harness as a user does: its commands in a subprocess, and a stub judge as its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import open_dict

from harness.config import CONF_DIR, component_kwargs
from harness.runner import Runner

ROOT = CONF_DIR.parent
# The benchmarks' generation size for the micro student and teacher (the micro world's own shape).
MICRO_SIZE = ("bench.num_frames=17", "bench.fps=8")
RULER_SIZE = (*MICRO_SIZE, "bench.height=32", "bench.width=32")
VBVR_SIZE = (*MICRO_SIZE, "bench.size=32x32")


def run_cli(*argv: str, expect: int | None = 0, cwd: Path = ROOT, timeout: float = 600) -> subprocess.CompletedProcess:
    """``argv`` in a subprocess from ``cwd`` (``python`` means this interpreter); stdout and stderr together."""
    argv = tuple(sys.executable if a == "python" else a for a in argv)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0"}
    proc = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    if expect is not None and proc.returncode != expect:
        raise AssertionError(f"{' '.join(argv)} exited {proc.returncode}, expected {expect}:\n{proc.stdout[-6000:]}")
    return proc


def compose_runner(output_root: Path, *overrides: str) -> Runner:
    """The runner ``python -m harness.eval`` would build for ``overrides``, in this process (the override check aside)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"output_root={output_root}", "progress=false", *overrides],
                      return_hydra_config=True)
    choices = dict(cfg.hydra.runtime.choices)
    with open_dict(cfg):
        del cfg["hydra"]
    return Runner(cfg, choices)


def micro_student_and_teacher():
    """The configs' default (micro) student and teacher on the CPU, built as the runner builds them; the teacher's
    question synthesis kept short (16 tokens, no retry)."""
    overrides = ["method=vlmteach", "student.device=cpu", "teacher.device=cpu", "teacher.synthesis_retries=0",
                 "teacher.max_new_tokens=16"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    return (instantiate(component_kwargs(cfg, "student"), _convert_="all"),
            instantiate(component_kwargs(cfg, "teacher"), _convert_="all"))


def harness_eval(*overrides: str, expect: int | None = 0) -> subprocess.CompletedProcess:
    return run_cli("python", "-m", "harness.eval", *overrides, "progress=false", expect=expect)


def run_directory(output: str) -> Path:
    """The run directory a single (non-multirun) ``harness.eval`` printed."""
    lines = [line for line in output.splitlines() if line.startswith("run directory: ")]
    assert lines, output[-3000:]
    return Path(lines[-1].removeprefix("run directory: "))


class StubJudgeProcess:
    """``python -m benchmarks.ruler.stub_judge`` on a free port, in its own process."""

    def __init__(self, tmp: Path, *args: str) -> None:
        port_file = tmp / "judge.port"
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.ruler.stub_judge", "--port-file", str(port_file), *args],
                                     cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not port_file.is_file() or not port_file.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the stub judge did not start")
            time.sleep(0.1)
        self.url = f"http://127.0.0.1:{port_file.read_text()}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def judge_overrides(self, cache_dir: Path) -> tuple[str, ...]:
        return (f"judge.base_url={self.base_url}", "judge.api_key_env=null", f"judge.cache_dir={cache_dir}")

    def chat_requests(self) -> int:
        return self.stats()["chat_requests"]

    def stats(self) -> dict:
        with urllib.request.urlopen(f"{self.url}/stats") as reply:
            return json.load(reply)

    def set_mode(self, mode: str) -> None:
        request = urllib.request.Request(f"{self.url}/control", data=json.dumps({"mode": mode}).encode(), method="POST")
        with urllib.request.urlopen(request):
            pass

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
