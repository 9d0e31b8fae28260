"""What a run's judge cost: the token usage its verdicts report (a record's ``score_details.usage``, written by
judges that report one: RULER's OpenAI-compatible judge).

A verdict from the judge cache carries the usage of the calls that made it, with ``cached: true``. The run's sum
(``summary.json``'s ``judge_usage``) counts fresh verdicts only: what scoring this run paid; the per-instance mean
(the tables' ``judge tok/inst``) counts every verdict at its own calls' cost: what judging one instance costs.
"""

from __future__ import annotations

from typing import Any, Iterable

from harness.chat_api import USAGE_KEYS
from harness.records import STATUS_OK


def _verdicts(records: Iterable[dict[str, Any]]) -> list[tuple[dict[str, int], bool]]:
    """(usage, cached) of every ok record whose verdict reports a usage."""
    found = []
    for record in records:
        details = record.get("score_details") or {}
        if record.get("status") == STATUS_OK and isinstance(details.get("usage"), dict):
            found.append((details["usage"], bool(details.get("cached"))))
    return found


def run_judge_usage(records: Iterable[dict[str, Any]]) -> dict[str, int] | None:
    """Tokens of the fresh verdicts of a run's (latest) records, summed, and how many verdicts came from the cache
    (not counted); None where no record reports a usage (no judge, or a local one)."""
    verdicts = _verdicts(records)
    if not verdicts:
        return None
    fresh = [usage for usage, cached in verdicts if not cached]
    return {"verdicts": len(fresh), "cached_verdicts": len(verdicts) - len(fresh),
            **{key: sum(int(usage.get(key, 0)) for usage in fresh) for key in USAGE_KEYS}}


def mean_judge_tokens(records: Iterable[dict[str, Any]]) -> float | None:
    """Mean total tokens of a verdict (cached ones at their original cost); None where none reports a usage."""
    totals = [int(usage.get("total_tokens", 0)) for usage, _ in _verdicts(records)]
    return sum(totals) / len(totals) if totals else None


def judge_usage_line(usage: dict[str, int] | None) -> list[str]:
    """The run table's line about the judge's cost (none without usage)."""
    if usage is None:
        return []
    return [f"judge tokens: {usage['total_tokens']} ({usage['prompt_tokens']} prompt, {usage['completion_tokens']} "
            f"completion) in {usage['verdicts']} fresh verdicts; {usage['cached_verdicts']} cached verdicts not counted", ""]
