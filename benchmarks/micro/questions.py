"""The questions the micro teacher asks about an instance, phrased per family from the prompt's own words
(so a teacher that reads the prompt can write them), each tied to the scorer checks whose minimum answers
it. The oracle teacher (``judge.py``) asks them; the lab trains the micro teacher to write them.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.micro.tasks import FORBIDDEN_COLOR, pattern_phrase
from harness.types import Instance

GOAL = "goal"


@dataclass(frozen=True)
class Question:
    text: str
    role: str  # "goal" or "process"
    checks: tuple[str, ...]  # scorer sub-scores whose minimum is the answer


_MOVES = "move one cell at a time, without vanishing or jumping?"


def questions_for(instance: Instance) -> list[Question]:
    """The goal question first, then 2-3 process questions, for any micro instance."""
    ref = instance.reference
    if instance.task == "toggle_lights":
        pattern = pattern_phrase(ref["pattern"], ref["orientation"])
        return [
            Question(f"At the end of the video, is it true that {pattern}?", GOAL, (GOAL,)),
            Question("Does each light switch no more than one time?", "process", ("no_flicker",)),
            Question(f"Does every light stay a {ref['on_color']} or {ref['off_color']} square in its cell?",
                     "process", ("lights_intact",)),
            Question("Does nothing else move?", "process", ("others_static",)),
        ]
    if instance.task == "match_colors":
        return [
            Question("At the end of the video, is every square on the outlined cell of the same color?", GOAL, (GOAL,)),
            Question(f"Does every square {_MOVES}", "process", ("continuity", "intact")),
            Question("Do the squares keep their colors the whole time?", "process", ("intact",)),
        ]
    agent = ref["movers"][0]["color"]
    target = next(m["color"] for m in ref["markers"] if m["role"] == "target")
    goal = Question(f"At the end of the video, is the {agent} square on the {target} outlined cell?", GOAL, (GOAL,))
    moves = Question(f"Does the {agent} square {_MOVES}", "process", ("continuity", "intact"))
    static = Question("Do the other squares and the outlined cells stay where they are?", "process", ("others_static",))
    if instance.task == "avoid_forbidden":
        avoid = Question(f"Does the {agent} square stay out of the {FORBIDDEN_COLOR} outlined cells the whole time?",
                         "process", ("avoids_forbidden",))
        return [goal, avoid, moves, static]
    return [goal, moves, static]
