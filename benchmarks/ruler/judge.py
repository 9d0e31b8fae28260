"""Checklist judges: send the official request, retry unparsable replies, cache valid verdicts.

Backends: ``ApiJudge`` (any OpenAI-compatible endpoint; GPT-o3 by default, as the paper and the
benchmark use) and ``LocalVlmJudge`` (a transformers VLM through the teacher adapter's
``generate``; not comparable with o3 numbers). A judge that never gives a valid reply raises
``ScoringError``: the runner records the instance as an error, it is never dropped or scored 0.

The system prompt is RULER-Bench's own unless ``system_prompt="paraphrase"`` (benchmarks.ruler.system_prompt):
given ``system_prompt_path`` it is read at once, else ``RulerBenchmark`` reads it from beside the data
(``use_data_dir``) before anything is generated.
"""

from __future__ import annotations

import abc
import logging
import time
from dataclasses import dataclass
from typing import Any

from benchmarks.ruler import system_prompt as prompts
from benchmarks.ruler.cache import JudgeCache, cache_key
from benchmarks.ruler.labels import ResponseFormatError, parse_labels
from benchmarks.ruler.request import ImageInput, JudgeRequest
from harness.chat_api import ChatApiError, ChatClient, ChatReply, EndpointUnreachable, add_usage, image_part, text_part
from harness.types import ScoringError, Teacher, UserError

log = logging.getLogger(__name__)

@dataclass
class Verdict:
    labels: list[str]
    raw: str
    attempts: int  # judge calls made for this verdict; 0 when it came from the cache
    cached: bool
    # Tokens of the calls that made the verdict (all its attempts; harness.chat_api.USAGE_KEYS), None where the backend
    # reports none. A cached verdict carries its original calls' usage: it cost nothing this time (``cached``).
    usage: dict[str, int] | None = None


class ChecklistJudge(abc.ABC):
    """The backend-independent part: attempts, backoff, format check and cache."""

    # Settings that change how the judge is called, never what it answers: the score hash leaves them out,
    # so a new timeout or cache folder neither re-scores nor refuses a run.
    transport_settings: tuple[str, ...] = ("cache_dir", "max_attempts", "retry_backoff_s", "deadline_s", "max_concurrency")

    def __init__(
        self,
        *,
        system_prompt: str,
        system_prompt_path: str | None,
        cache_dir: str | None,
        max_attempts: int,
        retry_backoff_s: float,
        deadline_s: float | None = None,
        max_concurrency: int = 1,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1 (judge requests in flight at once), got {max_concurrency}")
        self.max_concurrency = max_concurrency  # the runner scores up to this many instances at once
        if deadline_s is not None and deadline_s <= 0:
            raise ValueError(f"deadline_s must be positive or null (none), got {deadline_s}")
        self.deadline_s = deadline_s
        prompts.check_choice(system_prompt, system_prompt_path)
        self._prompt_choice = system_prompt
        self.prompt: prompts.SystemPrompt | None = None
        if system_prompt == "paraphrase" or system_prompt_path:
            self.prompt = prompts.load(system_prompt, system_prompt_path, None)
        self.cache = JudgeCache(cache_dir) if cache_dir else None
        self.max_attempts = max_attempts
        self.retry_backoff_s = retry_backoff_s

    def use_data_dir(self, data_dir: str | None) -> None:
        """Read the official prompt from beside the data unless a path or the paraphrase was given;
        a missing file stops the run here, before any generation, with the command that fetches it."""
        if self.prompt is None:
            self.prompt = prompts.load(self._prompt_choice, None, data_dir)

    def _loaded_prompt(self) -> prompts.SystemPrompt:
        if self.prompt is None:
            raise UserError("the RULER judge's system prompt was never read: give judge.system_prompt_path, "
                            "or let RulerBenchmark read it from bench.data_dir")
        return self.prompt

    @property
    def system_prompt(self) -> str:
        return self._loaded_prompt().text

    @property
    def system_prompt_sha256(self) -> str:
        return self._loaded_prompt().sha256

    @property
    def system_prompt_kind(self) -> str:
        """``official`` only for RULER-Bench's own prompt, byte for byte (benchmarks.ruler.system_prompt)."""
        return self._loaded_prompt().kind

    @property
    @abc.abstractmethod
    def model_id(self) -> str: ...

    @property
    @abc.abstractmethod
    def identity(self) -> dict[str, Any]:
        """Everything about the judge that can change its reply (part of the cache key)."""

    @abc.abstractmethod
    def _prepare(self, request: JudgeRequest) -> Any:
        """The backend's payload for ``request``, built once and reused across attempts."""

    @abc.abstractmethod
    def _complete(self, payload: Any, deadline: float | None) -> ChatReply:
        """One call, given up at ``deadline`` (``time.monotonic()``) where the backend can; raises
        ``ScoringError`` when the backend fails for good."""

    def judge(self, request: JudgeRequest) -> Verdict:
        key = cache_key(self.identity, self.system_prompt, request.digest())
        hit = self._cached(key, request.n_questions)
        if hit is not None:
            return hit
        payload = self._prepare(request)
        deadline = time.monotonic() + self.deadline_s if self.deadline_s is not None else None  # per instance
        problems: list[str] = []
        usage: dict[str, int] | None = None
        for attempt in range(1, self.max_attempts + 1):
            if attempt > 1:
                time.sleep(self.retry_backoff_s * 2 ** (attempt - 2))
            if deadline is not None and time.monotonic() >= deadline:
                raise ScoringError(f"judge {self.model_id}: no valid reply within deadline_s={self.deadline_s}: {problems}")
            reply = self._complete(payload, deadline)
            raw, usage = reply.text, add_usage(usage, reply.usage)
            try:
                labels = parse_labels(raw, request.n_questions)
            except ResponseFormatError as exc:
                problems.append(str(exc))
                log.warning("judge %s: unusable reply (%s), attempt %d/%d", self.model_id, exc, attempt, self.max_attempts)
                continue
            if self.cache:
                self.cache.put(key, {"judge": self.identity, "system_prompt_sha256": self.system_prompt_sha256, "raw": raw,
                                     "labels": labels, "usage": usage})
            return Verdict(labels=labels, raw=raw, attempts=attempt, cached=False, usage=usage)
        raise ScoringError(
            f"judge {self.model_id} gave no valid reply in {self.max_attempts} attempts: {problems}; last reply: {raw[:300]!r}"
        )

    def _cached(self, key: str, n_questions: int) -> Verdict | None:
        entry = self.cache.get(key) if self.cache else None
        if entry is None:
            return None
        try:  # re-checked, so a damaged or hand-edited entry is never trusted
            return Verdict(labels=parse_labels(entry["raw"], n_questions), raw=entry["raw"], attempts=0, cached=True,
                           usage=entry.get("usage"))
        except (KeyError, TypeError, ResponseFormatError) as exc:
            log.warning("judge cache entry %s is unusable (%s); asking the judge again", key, exc)
            return None


class ApiJudge(ChecklistJudge):
    """An OpenAI-compatible judge. Defaults follow upstream: model o3, ``presence_penalty=0``,
    no temperature; point ``base_url`` (and ``api_key_env``, or null) at a self-hosted server
    to use another VLM."""

    transport_settings = (*ChecklistJudge.transport_settings, "base_url", "api_key_env", "max_retries", "backoff_s", "timeout_s")

    def __init__(
        self,
        *,
        model: str = "o3",
        base_url: str | None = None,
        api_key_env: str | None = "OPENAI_API_KEY",
        max_retries: int = 5,
        backoff_s: float = 2.0,
        timeout_s: float = 600.0,
        extra_params: dict[str, Any] | None = None,
        system_prompt: str = "official",
        system_prompt_path: str | None = None,
        cache_dir: str | None = None,
        max_attempts: int = 4,
        retry_backoff_s: float = 2.0,
        deadline_s: float | None = 900.0,
        max_concurrency: int = 4,
    ) -> None:
        super().__init__(
            system_prompt=system_prompt, system_prompt_path=system_prompt_path, cache_dir=cache_dir,
            max_attempts=max_attempts, retry_backoff_s=retry_backoff_s, deadline_s=deadline_s,
            max_concurrency=max_concurrency,
        )
        params = {"presence_penalty": 0} if extra_params is None else dict(extra_params)
        self.client = ChatClient(
            model,
            base_url=base_url,
            api_key_env=api_key_env,
            max_retries=max_retries,
            backoff_s=backoff_s,
            timeout_s=timeout_s,
            extra_params=params,
        )

    @property
    def model_id(self) -> str:
        return self.client.model

    @property
    def identity(self) -> dict[str, Any]:
        return {"backend": "openai-compatible", "model": self.client.model, "base_url": self.client.base_url, "params": self.client.extra_params}

    def _prepare(self, request: JudgeRequest) -> list[dict[str, Any]]:
        content = [text_part(p) if isinstance(p, str) else image_part(_image_source(p)) for p in request.parts]
        return [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": content}]

    def _complete(self, payload: list[dict[str, Any]], deadline: float | None) -> ChatReply:
        try:
            return self.client.complete(payload, deadline=deadline)
        except EndpointUnreachable:
            raise  # nothing answers: the runner stops the run once, instead of failing every instance
        except (ChatApiError, UserError) as exc:
            raise ScoringError(f"judge {self.model_id}: {exc}") from exc


def _image_source(image: ImageInput):
    return image.path if image.path is not None else image.array


class LocalVlmJudge(ChecklistJudge):
    """A local transformers VLM as judge (``teacher.generate``, greedy). The official interleaved
    content is flattened: texts joined in order with an ``[Image k]`` marker where image k
    (passed to ``generate`` in the same order) stood; the system prompt leads the text."""

    def __init__(
        self,
        *,
        teacher: Teacher,
        model_id: str,
        max_new_tokens: int = 2048,
        system_prompt: str = "official",
        system_prompt_path: str | None = None,
        cache_dir: str | None = None,
        max_attempts: int = 1,
        retry_backoff_s: float = 0.0,
        max_concurrency: int = 1,
        revision: str | None = None,
    ) -> None:
        if max_concurrency != 1:
            raise ValueError(f"max_concurrency={max_concurrency}: a local judge answers one request at a time "
                             "(one model on one device); keep it at 1, or serve the model behind an OpenAI-compatible "
                             "endpoint (judge=o3 with base_url=...) to score concurrently")
        super().__init__(
            system_prompt=system_prompt, system_prompt_path=system_prompt_path, cache_dir=cache_dir,
            max_attempts=max_attempts, retry_backoff_s=retry_backoff_s,
        )
        self.teacher = teacher
        self._model_id = model_id
        self.revision = revision  # the judge model's hub revision (conf/judge/local_vlm.yaml: the teacher block's)
        self.max_new_tokens = max_new_tokens

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def identity(self) -> dict[str, Any]:
        pinned = {"revision": self.revision} if self.revision else {}  # null: the cache keys of before revisions
        return {"backend": "transformers", "model": self._model_id, "max_new_tokens": self.max_new_tokens, **pinned}

    def _prepare(self, request: JudgeRequest) -> tuple[str, list]:
        texts, images = [self.system_prompt, "\n"], []
        for part in request.parts:
            if isinstance(part, str):
                texts.append(part)
            else:
                images.append(part.to_array())
                texts.append(f"[Image {len(images)}]")
        return "".join(texts), images

    def _complete(self, payload: tuple[str, list], deadline: float | None) -> ChatReply:  # a local model: no deadline
        prompt, images = payload  # its token counts are not reported (usage None): it costs GPU time, not tokens
        return ChatReply(self.teacher.generate(prompt, images=images, max_new_tokens=self.max_new_tokens), None)


def no_judge() -> None:
    """``conf/judge/none.yaml``: no judge; RULER videos can be generated now and scored later."""
    return None
