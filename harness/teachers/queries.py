"""Query synthesis without a model: the prompt the teacher answers, a forgiving parser for what it
writes back, and a deterministic fallback when nothing parses (paper §III-B; the paper's own prompt
is unpublished, so this wording and its examples are ours)."""

from __future__ import annotations

import json
import re

from harness.types import Queries

_INSTRUCTIONS = """You check generated videos with yes/no questions.
A video model must carry out the task below{image_note}. Write questions that a viewer of the finished video can answer with Yes or No:
- exactly one goal question about the final state: is the task achieved by the end of the video?
- 1 to {max_process} process questions about how the video gets there: objects stay whole and keep their shape and colour, motion is continuous, rules and forbidden regions are respected, nothing appears or vanishes without reason, and everything the task does not mention stays put.
Phrase every question so that Yes means the requirement is met. Each question ends with a question mark.
Reply with JSON only: {{"goal": "...?", "process": ["...?", "...?"]}}

Task: guide the blue triangle along the corridor to the yellow exit without touching the walls.
{{"goal": "At the end of the video, is the blue triangle on the yellow exit?", "process": ["Does the blue triangle stay inside the corridor without crossing any wall?", "Does the blue triangle keep its shape and colour the whole time?"]}}

Task: stack the two cubes so that the small cube rests on the large one.
{{"goal": "By the end, is the small cube resting on top of the large cube?", "process": ["Are there exactly two cubes throughout the video?", "Do the cubes move without passing through each other or the table?"]}}

Task: open the left door of the cabinet.
{{"goal": "Is the left cabinet door open at the end of the video?", "process": ["Does the right cabinet door stay closed?", "Does the cabinet keep its shape while the door moves?"]}}
"""
_STRICT = "\nYour previous reply could not be read. Reply with the JSON object only, nothing else.\n"

# Generic process checks for the fallback: they hold for almost any task (the paper's process categories: object integrity, valid motion, continuity).
GENERIC_PROCESS = (
    "Do all objects keep their shape and colour throughout the video?",
    "Do objects move continuously, without vanishing, duplicating or jumping?",
    "Does everything the task does not mention stay unchanged?",
)

_GOAL_KEYS = ("goal", "goal_question", "goal_query", "final", "final_goal")
_PROCESS_KEYS = ("process", "process_questions", "process_queries", "constraints", "process_constraints")
_LABEL = re.compile(r"^\W*(goal|process|constraints?)\b[^:\n]*:\s*(.*)$", re.IGNORECASE)
_ITEM = re.compile(r"^\s*(?:[-*\u2022]|\(?\d+[.):])\s+(.*)$")


def build_synthesis_prompt(instance_prompt: str, *, max_process: int = 3, has_image: bool = False,
                           strict: bool = False) -> str:
    """The user message asking the teacher for one goal and 1..max_process process questions as JSON."""
    image_note = ", starting from the first frame shown in the image" if has_image else ""
    text = _INSTRUCTIONS.format(image_note=image_note, max_process=max_process)
    text += f"\nTask: {instance_prompt.strip()}\n"
    return text + (_STRICT if strict else "")


def parse_queries(text: str, max_process: int) -> Queries | None:
    """Goal and process questions from the teacher's reply, or None when no valid set is found.

    Reads a JSON object (also inside code fences, with trailing text or trailing commas) or
    "Goal:" / "Process:" labelled lines with numbered or bulleted items. Valid means one goal and at
    least one process question, each ending with "?"; extra process questions are dropped.
    """
    if max_process < 1:
        raise ValueError(f"max_process must be >= 1, got {max_process}")
    for goal, process in (*_json_candidates(text), _labelled_lines(text)):
        queries = _validated(goal, process, max_process, text)
        if queries is not None:
            return queries
    return None


def fallback_queries(instance_prompt: str, max_process: int) -> Queries:
    """Deterministic questions built from the task prompt alone, marked ``fallback=True``."""
    task = " ".join(instance_prompt.split()).rstrip(".!?;: ")
    if not task:
        raise ValueError("cannot build fallback queries from an empty prompt")
    task = task[0].lower() + task[1:]
    return Queries(goal=f'Does the video complete the task "{task}"?',
                   process=list(GENERIC_PROCESS[:max(1, max_process)]), fallback=True)


def _json_candidates(text: str) -> list[tuple[object, object]]:
    """(goal, process) from every JSON object that decodes, outermost first."""
    cleaned = re.sub(r"```(?:json)?", " ", text)
    cleaned = re.sub(r",\s*([}\]])", r"\1", cleaned)  # trailing commas
    decoder = json.JSONDecoder()
    found = []
    for start in (i for i, ch in enumerate(cleaned) if ch == "{"):
        try:
            obj, _ = decoder.raw_decode(cleaned, start)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            fields = {str(k).strip().lower(): v for k, v in obj.items()}
            found.append((_first(fields, _GOAL_KEYS), _first(fields, _PROCESS_KEYS)))
    return found


def _labelled_lines(text: str) -> tuple[object, object]:
    goal, process, section = None, [], None
    for line in text.splitlines():
        label = _LABEL.match(line)
        if label:
            section, rest = label.group(1).lower(), label.group(2).strip()
            if section == "goal" and rest and goal is None:
                goal = rest
            elif section != "goal" and rest:
                process.append(rest)
            continue
        item = _ITEM.match(line)
        content = item.group(1) if item else line.strip()
        if not content:
            continue
        if section == "goal" and goal is None:
            goal = content
        elif section is not None and section != "goal" and item:
            process.append(content)
    return goal, process


def _first(fields: dict, keys: tuple[str, ...]) -> object:
    return next((fields[k] for k in keys if k in fields), None)


def _question(value: object) -> str | None:
    """A cleaned question string ending with "?", or None."""
    if isinstance(value, dict):
        value = _first({str(k).lower(): v for k, v in value.items()}, ("question", "query", "q", "text"))
    if not isinstance(value, str):
        return None
    text = " ".join(value.split()).strip(" \"'`*")
    text = re.sub(r"\s+([?.,!:;])", r"\1", text)  # word-level tokenizers decode "end ?"
    words = re.findall(r"[A-Za-z]+", text)
    return text if text.endswith("?") and len(words) >= 2 else None


def _validated(goal: object, process: object, max_process: int, raw: str) -> Queries | None:
    if isinstance(goal, list) and goal:
        goal = goal[0]
    goal_q = _question(goal)
    if goal_q is None:
        return None
    items = process if isinstance(process, list) else [process]
    seen, kept = {goal_q.lower()}, []
    for item in items:
        q = _question(item)
        if q is not None and q.lower() not in seen:
            seen.add(q.lower())
            kept.append(q)
    if not kept:
        return None
    return Queries(goal=goal_q, process=kept[:max_process], fallback=False, raw=raw)
