"""Query synthesis text: the prompt, the forgiving parser and the deterministic fallback."""

import pytest

from harness.teachers.queries import GENERIC_PROCESS, build_synthesis_prompt, fallback_queries, parse_queries

GOAL = "Is the red agent on the green cell at the end?"
P1, P2, P3, P4 = ("Does the agent avoid every X cell?", "Does the agent stay whole?",
                  "Is there exactly one agent throughout?", "Does the agent move one cell at a time?")

PARSED = {
    "plain json": (f'{{"goal": "{GOAL}", "process": ["{P1}", "{P2}"]}}', GOAL, [P1, P2]),
    "fenced json with chatter": (f'Sure!\n```json\n{{"goal": "{GOAL}",\n "process": ["{P1}"]}}\n```\nHope it helps.',
                                 GOAL, [P1]),
    "trailing commas": (f'{{"goal": "{GOAL}", "process": ["{P1}", "{P2}",],}}', GOAL, [P1, P2]),
    "process as a string": (f'{{"goal": "{GOAL}", "process": "{P1}"}}', GOAL, [P1]),
    "other key names and question objects": (
        f'{{"Goal_Question": "{GOAL}", "process_questions": [{{"question": "{P1}"}}, {{"question": "{P2}"}}]}}',
        GOAL, [P1, P2]),
    "word-level decoding": ('{ " goal " : " is the agent on the cell ? " , " process " : [ " does it stay whole ? " ] }',
                            "is the agent on the cell?", ["does it stay whole?"]),
    "labelled numbered lines": (f"Goal: {GOAL}\nProcess:\n1. {P1}\n2) {P2}\n- {P3}", GOAL, [P1, P2, P3]),
    "markdown labels": (f"**Goal question:** {GOAL}\n**Process questions:**\n* {P1}\n* {P2}", GOAL, [P1, P2]),
    "goal on the next line, numbered process labels": (f"Goal:\n{GOAL}\nProcess 1: {P1}\nProcess 2: {P2}", GOAL, [P1, P2]),
    "too many process questions are capped": (f'{{"goal": "{GOAL}", "process": ["{P1}", "{P2}", "{P3}", "{P4}"]}}',
                                             GOAL, [P1, P2, P3]),
    "non-questions and duplicates dropped": (
        f'{{"goal": "{GOAL}", "process": ["The agent moves.", "{P1}", "{P1}", "{GOAL}", "", 7, "{P2}"]}}', GOAL, [P1, P2]),
    "first valid object wins": (f'{{"goal": "no question"}} then {{"goal": "{GOAL}", "process": ["{P1}"]}}', GOAL, [P1]),
}

UNPARSEABLE = {
    "empty": "",
    "garbage": "assistant assistant moved ] so cube",
    "missing process": f'{{"goal": "{GOAL}"}}',
    "empty process": f'{{"goal": "{GOAL}", "process": []}}',
    "goal is not a question": f'{{"goal": "The agent reaches the cell.", "process": ["{P1}"]}}',
    "process without questions": f'{{"goal": "{GOAL}", "process": ["It moves.", "?"]}}',
    "truncated json": f'{{"goal": "{GOAL}", "process": ["{P1}',
    "labels without a goal": f"Process:\n1. {P1}",
}


@pytest.mark.parametrize("name", sorted(PARSED))
def test_parse_queries_reads_malformed_replies(name):
    text, goal, process = PARSED[name]
    queries = parse_queries(text, max_process=3)
    assert queries is not None
    assert (queries.goal, queries.process) == (goal, process)
    assert queries.fallback is False and queries.raw == text


@pytest.mark.parametrize("name", sorted(UNPARSEABLE))
def test_parse_queries_rejects_invalid_replies(name):
    assert parse_queries(UNPARSEABLE[name], max_process=3) is None


def test_parse_queries_caps_at_max_process():
    text = f'{{"goal": "{GOAL}", "process": ["{P1}", "{P2}", "{P3}"]}}'
    assert parse_queries(text, max_process=1).process == [P1]
    with pytest.raises(ValueError):
        parse_queries(text, max_process=0)


def test_fallback_is_deterministic_and_marked():
    a = fallback_queries("  Move the red agent to the green cell.\n", max_process=2)
    assert a == fallback_queries("Move the red agent to the green cell.", max_process=2)
    assert a.fallback is True
    assert a.goal == 'Does the video complete the task "move the red agent to the green cell"?'
    assert a.process == list(GENERIC_PROCESS[:2])
    assert all(q.endswith("?") for q in a.all)
    assert len(fallback_queries("Open the door!", max_process=5).process) == len(GENERIC_PROCESS)
    with pytest.raises(ValueError):
        fallback_queries("  ", max_process=2)


def test_synthesis_prompt_states_task_format_and_limits():
    prompt = build_synthesis_prompt("Push the box onto the marker.", max_process=2, has_image=True)
    assert prompt.rstrip().endswith("Task: Push the box onto the marker.")
    assert "1 to 2 process questions" in prompt and "first frame shown in the image" in prompt
    assert "first frame" not in build_synthesis_prompt("x", has_image=False)
    assert "could not be read" in build_synthesis_prompt("x", strict=True)
    # Every few-shot example in the prompt is itself a reply the parser accepts.
    examples = [line for line in prompt.splitlines() if line.startswith('{"goal"')]
    assert len(examples) == 3
    assert all(parse_queries(line, max_process=3) is not None for line in examples)
