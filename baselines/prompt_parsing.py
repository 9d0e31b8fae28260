"""Reading a VLM's free text: a rewritten prompt, and which candidate video a critique prefers.

Both parsers return ``None`` for replies they cannot use; the caller falls back and flags it.
"""

from __future__ import annotations

import json
import re
from collections import Counter

PROMPT_KEYS = ("prompt", "new_prompt", "improved_prompt", "rewritten_prompt", "revised_prompt")
CHOICE_KEYS = ("better", "preferred", "best", "winner", "choice", "chosen")

_FENCE = re.compile(r"```[\w-]*[ \t]*\n?(.*?)(?:```|$)", re.S)
_LEAD_IN = re.compile(r"^[^\n]{0,80}:[ \t]*\n")  # "Here is the improved prompt:" on a line of its own
_LABEL = re.compile(r"^(?:\*\*|__)?(?:\w+ ){0,3}prompt\b(?:\*\*|__)?\s*[:\-]\s*(?:\*\*|__)?", re.I)
_QUOTES = [('"', '"'), ("'", "'"), ("\u201c", "\u201d"), ("\u2018", "\u2019"), ("`", "`"), ("\u00ab", "\u00bb")]
_WORD = re.compile(r"[^\W\d_]+(?:['-][^\W\d_]+)*")

_CAND = r"(?:candidate|video|option)\s*#?\s*(\d+)"
_NOT_NEGATED = r"(?:(?!not\b|no\b|never\b)\w+\s+){0,2}?"
# "Candidate 2 is (clearly) better", "the best is Video 1", "I prefer candidate 2", "Preferred: Candidate 1"
_CHOICE_TEXT = [
    re.compile(rf"\b{_CAND}\s+(?:is|was|looks|seems)\s+{_NOT_NEGATED}(?:the\s+)?"
               rf"(?:better|best|preferred|superior|stronger)\b", re.I),
    re.compile(rf"\b(?:prefer(?:red)?|winner|choice|choose|pick|best|better\s+(?:one|video|candidate))\b\s*"
               rf"(?:one|video|candidate)?\s*(?:is|would\s+be|:|=|-)?\s*(?:the\s+)?{_CAND}", re.I),
]
_BARE_CHOICE = re.compile(rf"^\W*(?:{_CAND}|(\d+))\W*$", re.I)


def parse_prompt_reply(reply: str, *, min_words: int = 3) -> str | None:
    """The prompt in a rewrite reply, without fences, JSON wrapping, labels or quotes, on one line.

    ``None`` for an empty, too short (< ``min_words`` words), mostly non-verbal or degenerate
    (one word repeated) reply: the caller keeps its current prompt.
    """
    text = reply.strip()
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1).strip()
    obj = _load_json(text)
    if isinstance(obj, (dict, list)):  # a JSON reply must carry the prompt under a known key
        text = _pick(obj, PROMPT_KEYS) or ""
    text = _LEAD_IN.sub("", text, count=1).strip() if "\n" in text else text
    text = _LABEL.sub("", text, count=1).strip()
    text = _strip_quotes(text)
    text = " ".join(text.split())
    return text if _looks_like_language(text, min_words) else None


def parse_choice(reply: str, num_candidates: int) -> int | None:
    """The 0-based index of the candidate a critique prefers, or ``None`` when it names none or several.

    Reads a JSON object (``{"better": 2}``) first, else phrases such as "Candidate 2 is better" or
    "I prefer video 1", else a bare number. Candidates are numbered from 1 in the reply.
    """
    for obj in reversed(re.findall(r"\{[^{}]*\}", reply)):
        value = _pick(_load_json(obj), CHOICE_KEYS)
        if value is not None:
            index = _candidate_index(value, num_candidates)
            if index is not None:
                return index
    named = {int(m.group(1)) for pattern in _CHOICE_TEXT for m in pattern.finditer(reply)}
    named = {n for n in named if 1 <= n <= num_candidates}
    if len(named) == 1:
        return named.pop() - 1
    bare = _BARE_CHOICE.match(reply.strip())
    if bare and not named:
        return _candidate_index(bare.group(1) or bare.group(2), num_candidates)
    return None


def _load_json(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def _pick(obj: object, keys: tuple[str, ...]) -> str | None:
    """The first of ``keys`` (case-insensitive) holding a string or number in a JSON object."""
    if not isinstance(obj, dict):
        return None
    lowered = {str(k).lower(): v for k, v in obj.items()}
    for key in keys:
        value = lowered.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            return str(value)
    return None


def _candidate_index(value: str, num_candidates: int) -> int | None:
    digits = re.search(r"\d+", value)
    if digits is None:
        return None
    number = int(digits.group())
    return number - 1 if 1 <= number <= num_candidates else None


def _strip_quotes(text: str) -> str:
    stripped = True
    while stripped and len(text) >= 2:
        stripped = False
        for left, right in _QUOTES:
            if text.startswith(left) and text.endswith(right):
                text, stripped = text[len(left):-len(right)].strip(), True
                break
    return text


def _looks_like_language(text: str, min_words: int) -> bool:
    words = [w.lower() for w in _WORD.findall(text)]
    if len(words) < max(min_words, 1):
        return False
    visible = [c for c in text if not c.isspace()]
    if sum(c.isalpha() for c in visible) < 0.5 * len(visible):
        return False
    # Degenerate decoding ("assistant assistant assistant ..."): one word is most of the reply.
    return not (len(words) >= 8 and Counter(words).most_common(1)[0][1] > 0.5 * len(words))
