"""A small client for OpenAI-compatible chat endpoints (OpenAI, vLLM, SGLang, ...).

Used by the RULER judge and by the prompt baselines. Transient failures (connection errors,
timeouts, 408/409/429/5xx, empty replies) are retried with exponential backoff; requests the
server refuses for good (401, 400, 404, ...) fail at once. Images travel as base64 data URLs.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import time
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


class ChatApiError(RuntimeError):
    """The endpoint refused the request, or kept failing after all retries."""


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

    def chat(self, messages: list[dict[str, Any]]) -> str:
        """The assistant's text for ``messages``; raises ``ChatApiError`` when retries run out."""
        client = self._openai()
        last_error = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                delay = min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s)
                log.warning("chat %s: %s; retry %d/%d in %.1fs", self.model, last_error, attempt, self.max_retries, delay)
                time.sleep(delay)
            try:
                response = client.chat.completions.create(model=self.model, messages=messages, **self.extra_params)
            except openai.APIStatusError as exc:
                if exc.status_code not in _RETRY_STATUS and exc.status_code < 500:
                    raise ChatApiError(f"{self._where()} refused the request (HTTP {exc.status_code}): {exc.message}") from exc
                last_error = f"HTTP {exc.status_code}: {exc.message}"
                continue
            except openai.APIConnectionError as exc:  # includes timeouts
                last_error = f"{type(exc).__name__}: {exc}"
                continue
            choice = response.choices[0] if response.choices else None
            text = choice.message.content if choice is not None else None
            if text:
                return text
            last_error = f"empty reply (finish_reason={getattr(choice, 'finish_reason', None)})"
        raise ChatApiError(f"{self._where()} failed after {self.max_retries + 1} attempts; last error: {last_error}")

    def _openai(self) -> openai.OpenAI:
        if self._client is None:
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
