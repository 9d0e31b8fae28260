"""A stand-in RULER judge: an OpenAI-compatible chat server on 127.0.0.1 for smoke runs and tests.

It answers every checklist request in the official format, one label per ``# Question N:`` of the
request, each label drawn from the request's content (so another video gets other labels, the same
video the same ones). Its labels mean nothing: it exists to run the whole scoring path offline.

    python -m benchmarks.ruler.stub_judge --port-file /tmp/judge.port
    python -m harness.eval bench=ruler judge.base_url=http://127.0.0.1:$(cat /tmp/judge.port)/v1 \\
        judge.api_key_env=null ...

Faults for tests: ``POST /control {"mode": ...}`` switches every later reply to ``garbage`` (a reply
without an ``<answer>``), ``error`` (HTTP 500), ``busy`` (HTTP 429 with ``Retry-After``) or ``hang``
(no reply until the client gives up), and back to ``ok``; ``{"delay_s": x}`` (or ``--delay-s``) holds every reply
x seconds. ``GET /stats`` counts the chat requests and the most that were in flight at once (``max_in_flight``).
Replies report token ``usage`` (about 4 characters a token, 85 an image), so cost accounting runs offline too.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from benchmarks.ruler.tasks import LABEL_VALUES

MODES = ("ok", "garbage", "error", "busy", "hang")
_QUESTION = re.compile(r"# Question \d+:")
HANG_S = 30.0  # longer than any client timeout a test sets; the server thread then answers nobody


def checklist_reply(messages: list[dict[str, Any]]) -> str:
    """An official-format reply: ``<think>`` and ``<answer>[labels]</answer>``, one label per question."""
    texts = [part.get("text", "") for m in messages for part in _parts(m) if part.get("type") == "text"]
    n_questions = sum(len(_QUESTION.findall(t)) for t in texts)
    digest = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).digest()
    labels = [sorted(LABEL_VALUES)[digest[i % len(digest)] % len(LABEL_VALUES)] for i in range(n_questions)]
    return f"<think>stub judge: labels drawn from the request</think>\n<answer>{json.dumps(labels)}</answer>"


def stub_usage(messages: list[dict[str, Any]], reply: str) -> dict[str, int]:
    """Token counts as a server reports them: texts at about 4 characters a token, 85 tokens an image."""
    parts = [part for m in messages for part in _parts(m)]
    prompt = sum(len(p.get("text", "")) // 4 for p in parts) + 85 * sum(p.get("type") == "image_url" for p in parts)
    completion = len(reply) // 4
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _parts(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content", "")
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


class StubJudge:
    def __init__(self, port: int = 0, delay_s: float = 0.0) -> None:
        self.mode = "ok"
        self.delay_s = delay_s
        self.chat_requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.httpd.daemon_threads = True

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path.rstrip("/") != "/stats":
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                self._send(200, {"chat_requests": stub.chat_requests, "mode": stub.mode, "delay_s": stub.delay_s,
                                 "in_flight": stub.in_flight, "max_in_flight": stub.max_in_flight})

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if self.path.rstrip("/") == "/control":
                    if "mode" in body and body["mode"] not in MODES:
                        return self._send(400, {"error": {"message": f"mode must be one of {MODES}"}})
                    stub.mode = body.get("mode", stub.mode)
                    stub.delay_s = float(body.get("delay_s", stub.delay_s))
                    return self._send(200, {"mode": stub.mode, "delay_s": stub.delay_s})
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                with stub._lock:
                    stub.chat_requests += 1
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                    mode, delay_s = stub.mode, stub.delay_s
                try:
                    time.sleep(delay_s)
                    self._reply(mode, body)
                finally:
                    with stub._lock:
                        stub.in_flight -= 1

            def _reply(self, mode: str, body: dict[str, Any]) -> None:
                if mode == "hang":
                    time.sleep(HANG_S)
                    return None
                if mode == "error":
                    return self._send(500, {"error": {"message": "stub judge: internal error", "type": "server_error"}})
                if mode == "busy":
                    return self._send(429, {"error": {"message": "stub judge: rate limited", "type": "rate_limit"}},
                                      headers={"Retry-After": "0"})
                messages = body.get("messages", [])
                text = "I cannot judge this." if mode == "garbage" else checklist_reply(messages)
                self._send(200, {
                    "id": f"chatcmpl-stub-{stub.chat_requests}", "object": "chat.completion", "created": 0,
                    "model": body.get("model", ""),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                    "usage": stub_usage(messages, text),
                })

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:  # one line per request would drown a run's log
                pass

        return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ruler.stub_judge", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--port-file", type=Path, help="write the port here once the server listens")
    parser.add_argument("--delay-s", type=float, default=0.0, help="hold every reply this long (concurrency tests)")
    args = parser.parse_args(argv)
    stub = StubJudge(args.port, args.delay_s)
    if args.port_file:
        args.port_file.write_text(str(stub.port))
    print(f"stub judge at http://127.0.0.1:{stub.port}/v1", flush=True)
    stub.httpd.serve_forever()


if __name__ == "__main__":
    main()
