"""Reading the judge's reply with the official format check (eval/eval.py, ``format_check``).

Rules: strip surrounding whitespace and one leading/trailing markdown code fence; the reply must
contain ``<answer>...</answer>``; its content must be a JSON list of exactly one label per checklist
question, each label one of Good / Medium / Poor (case-sensitive, as upstream).
"""

from __future__ import annotations

import json
import re

from benchmarks.ruler.tasks import LABEL_VALUES

_FENCE_OPEN = re.compile(r"^```[a-zA-Z]*\n?")
_FENCE_CLOSE = re.compile(r"```$")
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)


class ResponseFormatError(ValueError):
    """The judge's reply does not pass the official format check."""


def _strip_fences(text: str) -> str:
    return _FENCE_CLOSE.sub("", _FENCE_OPEN.sub("", text.strip()))


def parse_labels(response: str, n_questions: int) -> list[str]:
    """The ordered label list of a valid reply; ``ResponseFormatError`` says why a reply is invalid."""
    match = _ANSWER.search(_strip_fences(response))
    if not match:
        raise ResponseFormatError("no <answer>...</answer> tag")
    try:
        labels = json.loads(match.group(1).strip())
    except json.JSONDecodeError as exc:
        raise ResponseFormatError(f"<answer> is not JSON: {exc}") from exc
    if not isinstance(labels, list):
        raise ResponseFormatError(f"<answer> is a {type(labels).__name__}, not a list")
    if len(labels) != n_questions:
        raise ResponseFormatError(f"{len(labels)} labels for {n_questions} questions")
    invalid = [label for label in labels if not isinstance(label, str) or label not in LABEL_VALUES]
    if invalid:
        raise ResponseFormatError(f"invalid labels {invalid!r}; allowed: {sorted(LABEL_VALUES)}")
    return labels


def reasoning_text(response: str) -> str:
    """The ``<think>`` part of a reply (kept in the record, as upstream saves it), or ''."""
    match = _THINK.search(_strip_fences(response))
    return match.group(1).strip() if match else ""
