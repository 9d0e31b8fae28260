"""A small client for OpenAI-compatible chat endpoints (OpenAI, vLLM, SGLang, ...).

Used by the RULER judge and by the prompt baselines. Transient failures (connection errors,
timeouts, 408/409/429/5xx, empty replies) are retried with exponential backoff, or after the
server's ``Retry-After``; requests the server refuses for good (401, 400, 404, ...) and replies
that are not JSON fail at once. An optional deadline bounds all attempts of one call. An endpoint
that refused every connection raises ``EndpointUnreachable`` (a ``UserError``: the run stops once
instead of failing every instance). Images travel as base64 data URLs.
"""

from __future__ import annotations

import base64
import email.utils
import io
import logging
import os
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import openai
from PIL import Image

from harness.types import UserError

log = logging.getLogger(__name__)

# Magic bytes -> MIME type of the image files we send as they are (no re-encoding).
_MAGIC_MIME = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
_RETRY_STATUS = {408, 409, 429}


USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


@dataclass(frozen=True)
class ChatReply:
    text: str
    usage: dict[str, int] | None  # the reply's ``usage`` (USAGE_KEYS); None where the server sends none


def add_usage(a: dict[str, int] | None, b: dict[str, int] | None) -> dict[str, int] | None:
    """Token counts of two calls together (None + None is None: nothing was reported)."""
    if a is None or b is None:
        return a or b
    return {key: a.get(key, 0) + b.get(key, 0) for key in USAGE_KEYS}


class ChatApiError(RuntimeError):
    """The endpoint refused the request, or kept failing after all retries."""


class EndpointUnreachable(UserError):
    """Every attempt of a call was refused a connection: nothing answers at the endpoint."""


def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def image_part(image: np.ndarray | str | Path, jpeg_quality: int = 95) -> dict[str, Any]:
    """An ``image_url`` content part holding a data URL.

    A file is sent byte for byte (as the official RULER judge does) with the MIME type its
    content declares; a uint8 ``[H, W, 3]`` array is JPEG-encoded (quality 95, OpenCV's default).
    """
    if isinstance(image, (str, Path)):
        data = Path(image).read_bytes()
        mime = _sniff_mime(data, Path(image))
    else:
        data = encode_jpeg(image, jpeg_quality)
        mime = "image/jpeg"
    url = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    return {"type": "image_url", "image_url": {"url": url}}


def encode_jpeg(array: np.ndarray, quality: int = 95) -> bytes:
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"expected a uint8 image [H, W, 3], got {array.dtype} {array.shape}")
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _sniff_mime(data: bytes, path: Path) -> str:
    for magic, mime in _MAGIC_MIME:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    raise ValueError(f"not a PNG/JPEG/GIF/WebP image: {path}")


class ChatClient:
    """``chat(messages) -> str`` against one model of one OpenAI-compatible endpoint.

    ``api_key_env=None`` is for self-hosted servers that take no key. ``extra_params`` are passed
    to ``chat.completions.create`` as they are (e.g. ``presence_penalty``, ``max_completion_tokens``).
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key_env: str | None = "OPENAI_API_KEY",
        max_retries: int = 5,
        backoff_s: float = 2.0,
        max_backoff_s: float = 60.0,
        timeout_s: float = 600.0,
        extra_params: dict[str, Any] | None = None,
    ) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self.model = model
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.timeout_s = timeout_s
        self.extra_params = dict(extra_params or {})
        self._client: openai.OpenAI | None = None  # built on first use: no key needed until then
        self._client_lock = threading.Lock()  # calls may come from several threads (judge.max_concurrency)

    def chat(self, messages: list[dict[str, Any]], deadline: float | None = None) -> str:
        """The assistant's text for ``messages``; raises ``ChatApiError`` when retries run out, or when
        ``deadline`` (a ``time.monotonic()`` value) passes before a reply."""
        return self.complete(messages, deadline).text

    def complete(self, messages: list[dict[str, Any]], deadline: float | None = None) -> ChatReply:
        """``chat``, with the token usage the server reported for the reply (its last attempt: the failed ones
        returned no usage)."""
        client = self._openai()
        last_error, refused, delay = "", 0, 0.0
        for attempt in range(self.max_retries + 1):
            if attempt:
                delay = max(delay, min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s))
                if deadline is not None and time.monotonic() + delay >= deadline:
                    raise ChatApiError(f"{self._where()}: no reply before the deadline ({attempt} attempts; "
                                       f"the next would start in {delay:.0f}s); last error: {last_error}")
                log.warning("chat %s: %s; retry %d/%d in %.1fs", self.model, last_error, attempt, self.max_retries, delay)
                time.sleep(delay)
            timeout = self.timeout_s if deadline is None else min(self.timeout_s, max(deadline - time.monotonic(), 0.001))
            delay = 0.0
            try:
                response = client.chat.completions.create(model=self.model, messages=messages, timeout=timeout,
                                                          **self.extra_params)
            except openai.APIStatusError as exc:
                if exc.status_code not in _RETRY_STATUS and exc.status_code < 500:
                    raise ChatApiError(f"{self._where()} refused the request (HTTP {exc.status_code}): {exc.message}") from exc
                last_error = f"HTTP {exc.status_code}: {exc.message}"
                delay = _retry_after(exc.response.headers)
                continue
            except openai.APIConnectionError as exc:  # includes timeouts
                refused += _nobody_listens(exc)
                last_error = f"{type(exc).__name__}: {exc.__cause__ or exc}"
                continue
            if isinstance(response, str):  # the SDK hands back the body of a reply that is not JSON
                raise ChatApiError(f"{self._where()} answered with something other than JSON (is base_url the API's "
                                   f"/v1 address?); the reply starts: {response.strip()[:200]!r}")
            choice = response.choices[0] if response.choices else None
            text = choice.message.content if choice is not None else None
            if text:
                return ChatReply(text, _usage(response))
            last_error = f"empty reply (finish_reason={getattr(choice, 'finish_reason', None)})"
        if refused == self.max_retries + 1:
            raise EndpointUnreachable(f"nothing answers at {self._where()}: {last_error} on all {refused} attempts. "
                                      "Start the server or fix base_url; the run stopped here (the instances "
                                      "recorded so far are kept, and a re-run goes on from here).")
        raise ChatApiError(f"{self._where()} failed after {self.max_retries + 1} attempts; last error: {last_error}")

    def _openai(self) -> openai.OpenAI:
        with self._client_lock:
            return self._client or self._build_client()

    def _build_client(self) -> openai.OpenAI:
        if self.api_key_env is None:
            api_key = "EMPTY"  # self-hosted servers ignore the key, but the client wants one
        else:
            api_key = os.environ.get(self.api_key_env, "")
            if not api_key:
                raise UserError(
                    f"environment variable {self.api_key_env} is not set: export it with your API key "
                    f"for {self._where()}, or name another variable with api_key_env=..."
                )
        # Retries are ours (backoff configurable, non-transient errors not retried).
        self._client = openai.OpenAI(api_key=api_key, base_url=self.base_url, timeout=self.timeout_s, max_retries=0)
        return self._client

    def _where(self) -> str:
        return f"model {self.model!r} at {self.base_url or 'the OpenAI API'}"


def _usage(response: Any) -> dict[str, int] | None:
    usage = getattr(response, "usage", None)
    if usage is None:
        return None
    return {key: int(getattr(usage, key, 0) or 0) for key in USAGE_KEYS}


def _nobody_listens(exc: BaseException) -> bool:
    """A refused connection or an unknown host somewhere in the chain (the SDK wraps its HTTP library's errors)."""
    while exc is not None:
        if isinstance(exc, (ConnectionRefusedError, socket.gaierror)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _retry_after(headers: Mapping[str, str]) -> float:
    """Seconds the server asks to wait (``retry-after-ms``, ``retry-after`` as seconds or a date); 0 if none."""
    if "retry-after-ms" in headers:
        try:
            return float(headers["retry-after-ms"]) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return 0.0
    try:
        return float(value)
    except ValueError:
        when = email.utils.parsedate_to_datetime(value) if email.utils.parsedate_tz(value) else None
        return max((when.timestamp() - time.time()), 0.0) if when is not None else 0.0
