"""harness.chat_api against a real OpenAI-compatible HTTP endpoint on 127.0.0.1."""

import base64
import io
import socket
import time

import numpy as np
import pytest
from PIL import Image

from benchmarks.ruler.fixtures import FakeChatServer, Reply
from harness import chat_api
from harness.chat_api import ChatApiError, ChatClient, EndpointUnreachable, image_part
from harness.types import UserError

MESSAGES = [{"role": "user", "content": "hello"}]


def _client(server, **kw):
    kw = {"api_key_env": "TEST_CHAT_KEY", "max_retries": 2, "backoff_s": 0.0, "timeout_s": 10, **kw}
    return ChatClient("test-model", base_url=server.base_url, **kw)


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("TEST_CHAT_KEY", "sk-test")


def test_reply_text_and_request_body():
    with FakeChatServer(["hi there"]) as server:
        assert _client(server, extra_params={"presence_penalty": 0}).chat(MESSAGES) == "hi there"
    (body,) = server.requests
    assert body["model"] == "test-model"
    assert body["messages"] == MESSAGES
    assert body["presence_penalty"] == 0


def test_transient_errors_are_retried_then_succeed():
    with FakeChatServer([500, 429, "ok"]) as server:
        assert _client(server).chat(MESSAGES) == "ok"
    assert len(server.requests) == 3


def test_empty_reply_is_retried():
    with FakeChatServer(["", "ok"]) as server:
        assert _client(server).chat(MESSAGES) == "ok"
    assert len(server.requests) == 2


def test_retries_exhausted_raise_with_last_error():
    with FakeChatServer([503, 503, 503, "too late"]) as server:
        with pytest.raises(ChatApiError, match=r"3 attempts.*503"):
            _client(server, max_retries=2).chat(MESSAGES)
    assert len(server.requests) == 3


def test_refused_request_is_not_retried():
    with FakeChatServer([401, "ok"]) as server:
        with pytest.raises(ChatApiError, match="HTTP 401"):
            _client(server).chat(MESSAGES)
    assert len(server.requests) == 1


def test_missing_key_names_the_variable_and_sends_nothing(monkeypatch):
    monkeypatch.delenv("TEST_CHAT_KEY")
    with FakeChatServer(["ok"]) as server:
        with pytest.raises(UserError, match="TEST_CHAT_KEY"):
            _client(server).chat(MESSAGES)
    assert server.requests == []


def test_keyless_self_hosted_server():
    with FakeChatServer(["ok"]) as server:
        assert _client(server, api_key_env=None).chat(MESSAGES) == "ok"


def test_image_part_sends_files_byte_for_byte_with_their_type(tmp_path):
    png = tmp_path / "a.png"
    Image.fromarray(np.full((4, 6, 3), 7, np.uint8)).save(png)
    url = image_part(png)["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == png.read_bytes()
    (tmp_path / "b.txt").write_text("not an image")
    with pytest.raises(ValueError, match="not a PNG"):
        image_part(tmp_path / "b.txt")


def test_image_part_encodes_arrays_as_jpeg():
    array = np.zeros((10, 20, 3), np.uint8)
    array[:, 10:] = 200
    part = image_part(array)
    assert part["type"] == "image_url"
    url = part["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))
    assert decoded.shape == (10, 20, 3)
    assert np.abs(decoded.astype(int) - array).max() <= 8  # quality 95
    with pytest.raises(ValueError, match="uint8"):
        image_part(array.astype(np.float32))


# --- failing fast (issue 30) -------------------------------------------------------------------


@pytest.fixture
def sleeps(monkeypatch):
    """The waits between attempts, recorded instead of slept."""
    waited = []
    monkeypatch.setattr(chat_api.time, "sleep", waited.append)
    return waited


def test_retry_after_is_honoured(sleeps):
    with FakeChatServer([Reply(429, b"{}", {"Content-Type": "application/json", "Retry-After": "7"}), "ok"]) as server:
        assert _client(server).chat(MESSAGES) == "ok"
    assert sleeps == [7.0]


def test_a_wait_past_the_deadline_fails_at_once(sleeps):
    with FakeChatServer([Reply(503, b"{}", {"Content-Type": "application/json", "Retry-After": "120"}), "ok"]) as server:
        with pytest.raises(ChatApiError, match="no reply before the deadline.*HTTP 503"):
            _client(server).chat(MESSAGES, deadline=time.monotonic() + 60)
    assert sleeps == [] and len(server.requests) == 1


def test_a_hung_endpoint_is_given_up_at_the_deadline(sleeps):
    with FakeChatServer(default=None, script=[Reply(hang=True)] * 3) as server:
        with pytest.raises(ChatApiError, match="no reply before the deadline.*APITimeoutError"):
            _client(server, timeout_s=600).chat(MESSAGES, deadline=time.monotonic() + 0.5)
    assert len(server.requests) == 1


def test_a_reply_that_is_not_json_is_quoted():
    page = b"<html><body>Please log in</body></html>"
    with FakeChatServer([Reply(200, page, {"Content-Type": "text/html"}), "ok"]) as server:
        with pytest.raises(ChatApiError, match=r"other than JSON.*starts: '<html><body>Please log in"):
            _client(server).chat(MESSAGES)
    assert len(server.requests) == 1


def test_refused_connections_raise_a_user_error_naming_the_endpoint(sleeps):
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = ChatClient("test-model", base_url=f"http://127.0.0.1:{port}/v1", api_key_env=None, max_retries=2, backoff_s=0.0)
    with pytest.raises(EndpointUnreachable, match=f"nothing answers at model 'test-model' at http://127.0.0.1:{port}/v1.*3 attempts"):
        client.chat(MESSAGES)
    assert issubclass(EndpointUnreachable, UserError)
