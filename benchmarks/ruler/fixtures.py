"""Offline stand-ins for tests and smoke runs: a tiny release in the exact upstream format, and a
scripted OpenAI-compatible chat server on 127.0.0.1.

The release has 5 records over 4 categories: I2V and T2V, a ground-truth image, an implicit
explanation, an input video, a checklist without IF (vision rule) and a checklist given as JSON
text (as in the parquet view). Media are small random PNGs / one mp4. Where ``make data`` puts
RULER-Bench's judge prompt, a labelled stand-in (``STAND_IN_PROMPT``) is written: its bytes differ
from upstream's, so verdicts under it are recorded as ``modified``, never as official.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchmarks.ruler.system_prompt import OFFICIAL_RELPATH
from harness.video import write_mp4

STAND_IN_PROMPT = (
    "TEST STAND-IN written by benchmarks/ruler/fixtures.py where RULER-Bench's eval/system_prompt.txt goes; "
    "not the official judge prompt. Reply <think>...</think><answer>[labels]</answer>, one of Good, Medium, "
    "Poor per checklist question.\n"
)

TINY_RECORDS: list[dict[str, Any]] = [
    {
        "task_name": "physics", "category": "science", "index": 0,
        "prompt": "A ball rolls off the table.", "implicit_explanation": "Gravity pulls the ball down to the floor.",
        "input_image_path": "images/physics_0.png", "gt_image_path": "gt/physics_0.png", "input_video_path": "",
        "initial_scenario": "a ball on a table",
        "checklist": [
            {"Rule Coherence": "Does the ball fall down?"},
            {"Visual Consistency": "Does the ball keep its colour?"},
            {"Visual Fidelity": "Is the video free of artefacts?"},
            {"Instruction Following": "Does the ball leave the table?"},
            {"Rule Coherence": "Does the ball come to rest on the floor?"},
        ],
    },
    {
        "task_name": "physics", "category": "science", "index": 1,
        "prompt": "Ice melts in the sun.", "implicit_explanation": "", "input_image_path": "", "gt_image_path": "",
        "input_video_path": "", "initial_scenario": "",
        "checklist": [{"Rule Coherence": "Does the ice turn into water?"}, {"Instruction Following": "Is there ice in the sun?"}],
    },
    {
        "task_name": "color", "category": "vision rule", "index": 0,
        "prompt": "Continue the colour pattern.", "implicit_explanation": "The next square is red.",
        "input_image_path": "images/color_0.png", "gt_image_path": "", "input_video_path": "videos/color_0.mp4",
        "initial_scenario": "",
        "checklist": [
            {"Rule Coherence": "Is the next square red?"},
            {"Visual Consistency": "Do the earlier squares stay unchanged?"},
            {"Visual Fidelity": "Are the squares sharp?"},
        ],
    },
    {
        "task_name": "chess", "category": "game", "index": 0,
        "prompt": "White gives checkmate in one move.", "implicit_explanation": "Queen to h7.",
        "input_image_path": "images/chess_0.png", "gt_image_path": "gt/chess_0.png", "input_video_path": "",
        "initial_scenario": "",
        "checklist": [{"Rule Coherence": "Is the move legal?"}, {"Instruction Following": "Is it checkmate?"}],
    },
    {
        "task_name": "food", "category": "humanity", "index": 0,
        "prompt": "A chef serves sushi.", "implicit_explanation": "", "input_image_path": "", "gt_image_path": "",
        "input_video_path": "", "initial_scenario": "",
        "checklist": json.dumps([{"Instruction Following": "Is sushi served?"}, {"Visual Fidelity": "Are hands realistic?"}]),
    },
]


def write_tiny_release(root: str | Path, parquet: bool = False, seed: int = 0,
                       records: list[dict[str, Any]] | None = None) -> Path:
    """Write the tiny release (or ``records`` in its format) under ``root``: ``data.jsonl`` (or
    ``data/train-*.parquet``) + media."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    records = TINY_RECORDS if records is None else records
    for record in records:
        for key in ("input_image_path", "gt_image_path"):
            if record[key]:
                path = root / record[key]
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(path)
        if record["input_video_path"]:
            write_mp4(root / record["input_video_path"], rng.integers(0, 256, (9, 32, 32, 3), dtype=np.uint8), fps=8)
    if parquet:
        import pandas as pd

        rows = [{**r, "checklist": r["checklist"] if isinstance(r["checklist"], str) else json.dumps(r["checklist"])} for r in records]
        (root / "data").mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_parquet(root / "data" / "train-00000-of-00001.parquet")
    else:
        root.mkdir(parents=True, exist_ok=True)
        with open(root / "data.jsonl", "w", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps(record) + "\n")
    (root / OFFICIAL_RELPATH).parent.mkdir(parents=True, exist_ok=True)
    (root / OFFICIAL_RELPATH).write_text(STAND_IN_PROMPT, encoding="utf-8")
    return root


@dataclass
class Reply:
    """A scripted reply beyond text or a bare status: any status, headers and raw body, or no reply at all."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # never answer (until the server stops): a hung endpoint


class FakeChatServer:
    """An OpenAI-compatible ``/v1/chat/completions`` endpoint answering from a script.

    Each script entry is the reply text, an int HTTP status to fail with, or a ``Reply``. After the
    script runs out, ``default`` (text) is answered. ``requests`` keeps every JSON body received.
    """

    def __init__(self, script: Iterable[str | int | Reply] = (), default: str | None = None) -> None:
        self.script = list(script)
        self.default = default
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()  # releases hung replies
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> FakeChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def _next(self, body: dict[str, Any]) -> str | int | Reply:
        with self._lock:
            self.requests.append(body)
            if self.script:
                return self.script.pop(0)
            if self.default is None:
                return 500
            return self.default

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                reply = server._next(body)
                if isinstance(reply, Reply):
                    return self._send_reply(reply)
                if isinstance(reply, int):
                    return self._send(reply, {"error": {"message": f"scripted failure {reply}", "type": "test"}})
                return self._send(200, {
                    "id": f"chatcmpl-{len(server.requests)}", "object": "chat.completion", "created": 0,
                    "model": body.get("model", ""),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                })

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                self._send_reply(Reply(status, json.dumps(payload).encode(), {"Content-Type": "application/json"}))

            def _send_reply(self, reply: Reply) -> None:
                if reply.hang:
                    server._stopping.wait()
                    return
                self.send_response(reply.status)
                for name, value in {"Content-Length": str(len(reply.body)), **reply.headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

        return Handler
