"""The VLM behind the prompt-space baselines (prompt_rewrite, videotpo).

Two backends answer ``ask(ctx, text, images) -> str``:
- ``TeacherVlm``: the run's teacher (``Teacher.generate``); a method using it has ``needs_teacher``.
- ``ApiVlm``: a chat model behind an OpenAI-compatible endpoint (``harness.chat_api.ChatClient``);
  transient failures are retried there, then ``ChatApiError`` propagates so the runner records
  the instance as an error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np

from harness.chat_api import ChatClient, image_part, text_part
from harness.method import Method, MethodContext
from harness.types import MethodFailed, Trace, UserError


class TeacherVlm:
    """Greedy generation by the run's teacher, images first (as the chat template places them)."""

    needs_teacher: ClassVar[bool] = True

    def __init__(self, *, max_new_tokens: int = 256):
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        self.max_new_tokens = max_new_tokens

    def ask(self, ctx: MethodContext, text: str, images: Sequence[np.ndarray] = ()) -> str:
        if ctx.teacher is None:
            raise RuntimeError("this prompt baseline asks the run's teacher, but no teacher was loaded")
        return ctx.teacher.generate(text, images=list(images) or None, max_new_tokens=self.max_new_tokens)

    def describe(self) -> dict[str, Any]:
        return {"backend": "teacher", "max_new_tokens": self.max_new_tokens}


class ApiVlm:
    """One user turn (images as JPEG data URLs, then the text) to a chat model of an OpenAI-compatible API."""

    needs_teacher: ClassVar[bool] = False

    def __init__(self, *, model: str, base_url: str | None = None, api_key_env: str | None = "OPENAI_API_KEY",
                 max_retries: int = 5, backoff_s: float = 2.0, timeout_s: float = 600.0, jpeg_quality: int = 95,
                 extra_params: dict[str, Any] | None = None):
        self.client = ChatClient(model, base_url=base_url, api_key_env=api_key_env, max_retries=max_retries,
                                 backoff_s=backoff_s, timeout_s=timeout_s, extra_params=extra_params)
        self.jpeg_quality = jpeg_quality

    def ask(self, ctx: MethodContext, text: str, images: Sequence[np.ndarray] = ()) -> str:
        content = [*(image_part(image, jpeg_quality=self.jpeg_quality) for image in images), text_part(text)]
        return self.client.chat([{"role": "user", "content": content}])

    def describe(self) -> dict[str, Any]:
        return {"backend": "api", "model": self.client.model, "base_url": self.client.base_url,
                "extra_params": self.client.extra_params}


PromptVlm = TeacherVlm | ApiVlm


def check_backend(method: Method, vlm: PromptVlm) -> None:
    """The runner loads a teacher only for methods whose class says so: the backend must agree."""
    cls = type(method)
    if vlm.needs_teacher != cls.needs_teacher:
        base = cls.__name__.removeprefix("Api")
        wanted = base if vlm.needs_teacher else f"Api{base}"
        raise UserError(f"{cls.__name__} cannot use a {type(vlm).__name__} (the runner would "
                        f"{'not ' if vlm.needs_teacher else ''}load a teacher): use "
                        f"_target_: {cls.__module__}.{wanted} (see conf/method/).")


@contextlib.contextmanager
def trace_on_error(trace: Trace) -> Iterator[None]:
    """An escaping exception becomes a ``MethodFailed`` with the trace so far: the runner records it with the error."""
    try:
        yield
    except Exception as exc:
        raise MethodFailed(exc, trace) from exc
