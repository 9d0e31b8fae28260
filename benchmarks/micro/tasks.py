"""The four task families: spec sampling, prompts, categories and solution plans.

A task spec is the instance's judge-only ``reference`` dict (JSON-friendly: cells are [row, col]).
Mover families (reach_target, avoid_forbidden, match_colors) share one schema::

    {"movers": [{"color", "start", "goal"}], "statics": [{"color", "cell"}],
     "markers": [{"color", "cell", "role": "target" | "decoy" | "forbidden"}]}

toggle_lights uses::

    {"lights": [[r, c], ...] (reading order), "orientation": "row" | "column",
     "start": [0/1 ...], "target": [0/1 ...], "pattern": name, "on_color", "off_color",
     "statics": [{"color", "cell"}], "markers": []}

ID / OOD (combinations the student never trains on, one shift per family; the VAE, light decoder
and teacher do train on OOD instances, benchmarks/micro/README.md):
- reach_target: ID yellow agent -> red target; OOD unseen colour roles (cyan/magenta/white agent,
  green/blue target).
- avoid_forbidden: ID 2 forbidden cells; OOD 4 forbidden cells.
- match_colors: ID 2 object/marker pairs; OOD 3 pairs.
- toggle_lights: ID a row of lights (left/right wording); OOD a column (top/bottom wording).
"""

from __future__ import annotations

import abc
import re
from collections import deque
from dataclasses import dataclass
from string import Formatter

import numpy as np

from benchmarks.micro.world import (
    GRID,
    NUM_FRAMES,
    Cell,
    Marker,
    Scene,
    Solid,
    all_cells,
    manhattan,
    neighbours,
    schedule,
)

SPLITS = ("id", "ood")
MAX_STEPS = NUM_FRAMES - 3  # what world.schedule fits with its default hold
SOLID_COLORS = ["red", "green", "blue", "yellow", "magenta", "cyan", "white"]  # grey is reserved
FORBIDDEN_COLOR = "grey"
LIGHT_ON, LIGHT_OFF = "yellow", "grey"
MAX_TRIES = 1000

Move = tuple[int, Cell]  # (solid index, cell it steps to)


class NoPlan(ValueError):
    """No valid plan exists for this spec (the sampler then draws another spec)."""


def cell(value) -> Cell:
    return (int(value[0]), int(value[1]))


def tokenize(text: str) -> list[str]:
    """Lowercase words, with punctuation as separate tokens (the micro teacher's word level)."""
    return re.findall(r"[a-z]+|[^\sa-z]", text.lower())


# ---------------------------------------------------------------- planning on the grid


def shortest_path(
    start: Cell, goal: Cell, blocked: set[Cell], rng: np.random.Generator | None = None
) -> list[Cell] | None:
    """Cells after ``start`` up to ``goal`` on a 4-connected shortest path avoiding ``blocked``.

    ``rng`` breaks ties between equally short paths at random; None gives the canonical path.
    """
    parents: dict[Cell, Cell | None] = {start: None}
    queue = deque([start])
    while queue:
        here = queue.popleft()
        if here == goal:
            path = []
            while here != start:
                path.append(here)
                here = parents[here]
            return path[::-1]
        steps = neighbours(here)
        if rng is not None:
            steps = [steps[i] for i in rng.permutation(len(steps))]
        for nxt in steps:
            if nxt not in parents and nxt not in blocked:
                parents[nxt] = here
                queue.append(nxt)
    return None


def plan_moves(
    reference: dict, goals: list[Cell], rng: np.random.Generator | None = None, via: Cell | None = None
) -> list[Move]:
    """Single-cell steps taking each mover (in order) to its goal without crossing solids.

    Forbidden cells are never entered unless ``via`` names one (the first mover then passes it);
    other markers are avoided when possible. Raises NoPlan if there is no such plan.
    """
    movers = [cell(m["start"]) for m in reference["movers"]]
    statics = {cell(s["cell"]) for s in reference["statics"]}
    forbidden = {cell(m["cell"]) for m in reference["markers"] if m["role"] == "forbidden"}
    markers = {cell(m["cell"]) for m in reference["markers"]}
    moves: list[Move] = []
    for i, goal in enumerate(goals):
        others = statics | {c for j, c in enumerate(movers) if j != i}
        hard = (others | forbidden) - ({via} if via is not None and i == 0 else set())
        waypoints = [via, goal] if via is not None and i == 0 else [goal]
        here = movers[i]
        for target in waypoints:
            path = shortest_path(here, target, hard | (markers - {target, via}), rng)
            path = path if path is not None else shortest_path(here, target, hard, rng)
            if path is None:
                raise NoPlan(f"mover {i} cannot reach {target}")
            moves += [(i, c) for c in path]
            here = target
        movers[i] = goal
    if len(moves) > MAX_STEPS:
        raise NoPlan(f"{len(moves)} steps do not fit in {NUM_FRAMES} frames")
    return moves


def scenes_from_moves(start: Scene, moves: list[Move]) -> list[Scene]:
    """One scene per frame, applying the moves on world.schedule's timetable."""
    states = [start]
    for index, target in moves:
        states.append(states[-1].move(index, target))
    return [states[k] for k in schedule(len(moves))]


# ---------------------------------------------------------------- families


@dataclass(frozen=True)
class Family(abc.ABC):
    """A task family: how to sample a spec, phrase it, draw it and solve it."""

    name: str
    category: str
    template: str  # str.format template of the prompt
    slot_values: dict[str, tuple[str, ...]]  # every value a template slot can take (for the vocabulary)

    def sample(self, rng: np.random.Generator, split: str) -> dict:
        for _ in range(MAX_TRIES):
            reference = self._draw(rng, split)
            try:
                self.check(reference)
            except NoPlan:
                continue
            return reference
        raise RuntimeError(f"{self.name}: no feasible spec in {MAX_TRIES} draws (generator bug)")

    def vocabulary(self) -> set[str]:
        fixed = "".join(text for text, *_ in Formatter().parse(self.template))
        return set(tokenize(fixed)).union(*(tokenize(v) for values in self.slot_values.values() for v in values))

    @abc.abstractmethod
    def _draw(self, rng: np.random.Generator, split: str) -> dict:
        """One random spec, not yet checked for feasibility."""

    @abc.abstractmethod
    def check(self, reference: dict) -> None:
        """Raise NoPlan unless the solution and every corruption of this spec can be drawn."""

    @abc.abstractmethod
    def prompt(self, reference: dict) -> str: ...

    @abc.abstractmethod
    def start_scene(self, reference: dict) -> Scene: ...

    @abc.abstractmethod
    def solve(self, reference: dict, rng: np.random.Generator | None = None) -> list[Scene]:
        """The correct video's scenes; ``rng`` picks among equally short plans (None: canonical)."""


def _pick(rng: np.random.Generator, options: list, k: int) -> list:
    return [options[i] for i in rng.choice(len(options), size=k, replace=False)]


def _cells_json(cells: list[Cell]) -> list[list[int]]:
    return [list(c) for c in cells]


class MoverFamily(Family):
    """Families where coloured squares walk to cells; shares the schema and the solver."""

    def goals(self, reference: dict) -> list[Cell]:
        return [cell(m["goal"]) for m in reference["movers"]]

    def wrong_goals(self, reference: dict) -> list[Cell]:
        """Plausible wrong destinations: the first decoy marker (one mover) or a rotation of goals."""
        goals = self.goals(reference)
        if len(goals) > 1:
            return goals[1:] + goals[:1]
        decoys = [cell(m["cell"]) for m in reference["markers"] if m["role"] == "decoy"]
        return decoys[:1]

    def check(self, reference: dict) -> None:
        plan_moves(reference, self.goals(reference))
        plan_moves(reference, self.wrong_goals(reference))
        if min(manhattan(cell(m["start"]), cell(m["goal"])) for m in reference["movers"]) < 2:
            raise NoPlan("every mover must travel at least two cells (teleport corruption)")

    def start_scene(self, reference: dict) -> Scene:
        solids = [Solid(m["color"], cell(m["start"])) for m in reference["movers"]]
        solids += [Solid(s["color"], cell(s["cell"])) for s in reference["statics"]]
        return Scene(tuple(solids), tuple(Marker(m["color"], cell(m["cell"])) for m in reference["markers"]))

    def solve(self, reference: dict, rng: np.random.Generator | None = None) -> list[Scene]:
        return scenes_from_moves(self.start_scene(reference), plan_moves(reference, self.goals(reference), rng))


@dataclass(frozen=True)
class ReachTarget(MoverFamily):
    def _draw(self, rng: np.random.Generator, split: str) -> dict:
        if split == "id":
            agent, target = "yellow", "red"
        else:
            agent, target = _pick(rng, ["cyan", "magenta", "white"], 1)[0], _pick(rng, ["green", "blue"], 1)[0]
        others = _pick(rng, [c for c in SOLID_COLORS if c not in (agent, target)], 2)
        start, goal, decoy, static = _pick(rng, all_cells(), 4)
        return {
            "movers": [{"color": agent, "start": list(start), "goal": list(goal)}],
            "statics": [{"color": others[0], "cell": list(static)}],
            "markers": [
                {"color": target, "cell": list(goal), "role": "target"},
                {"color": others[1], "cell": list(decoy), "role": "decoy"},
            ],
        }

    def check(self, reference: dict) -> None:
        mover = reference["movers"][0]
        if manhattan(cell(mover["start"]), cell(mover["goal"])) < 3:
            raise NoPlan("target too close to the agent")
        super().check(reference)

    def prompt(self, reference: dict) -> str:
        target = next(m for m in reference["markers"] if m["role"] == "target")
        return self.template.format(agent=reference["movers"][0]["color"], target=target["color"])


@dataclass(frozen=True)
class AvoidForbidden(MoverFamily):
    def _draw(self, rng: np.random.Generator, split: str) -> dict:
        n_forbidden = 2 if split == "id" else 4
        static_color, decoy_color = _pick(rng, [c for c in SOLID_COLORS if c not in ("yellow", "red")], 2)
        start, goal, decoy, static, *forbidden = _pick(rng, all_cells(), 4 + n_forbidden)
        markers = [
            {"color": "red", "cell": list(goal), "role": "target"},
            {"color": decoy_color, "cell": list(decoy), "role": "decoy"},
        ]
        markers += [{"color": FORBIDDEN_COLOR, "cell": list(f), "role": "forbidden"} for f in forbidden]
        return {
            "movers": [{"color": "yellow", "start": list(start), "goal": list(goal)}],
            "statics": [{"color": static_color, "cell": list(static)}],
            "markers": markers,
        }

    def forbidden(self, reference: dict) -> list[Cell]:
        return [cell(m["cell"]) for m in reference["markers"] if m["role"] == "forbidden"]

    def forbidden_detour(self, reference: dict, rng: np.random.Generator | None = None) -> list[Move]:
        """The shortest plan that reaches the goal through a forbidden cell (a wrong solution)."""
        plans = []
        for f in self.forbidden(reference):
            try:
                plans.append(plan_moves(reference, self.goals(reference), rng, via=f))
            except NoPlan:
                continue
        if not plans:
            raise NoPlan("no path through a forbidden cell fits")
        return min(plans, key=len)

    def check(self, reference: dict) -> None:
        mover = reference["movers"][0]
        start, goal = cell(mover["start"]), cell(mover["goal"])
        if manhattan(start, goal) < 3:
            raise NoPlan("target too close to the agent")
        # Avoiding must matter: a forbidden cell lies on some straight-line shortest path.
        box = [
            f for f in self.forbidden(reference) if manhattan(start, f) + manhattan(f, goal) == manhattan(start, goal)
        ]
        if not box:
            raise NoPlan("no forbidden cell between agent and target")
        super().check(reference)
        self.forbidden_detour(reference)

    def prompt(self, reference: dict) -> str:
        return self.template.format(agent="yellow", target="red", forbidden=FORBIDDEN_COLOR)


@dataclass(frozen=True)
class MatchColors(MoverFamily):
    def _draw(self, rng: np.random.Generator, split: str) -> dict:
        n = 2 if split == "id" else 3
        colors = _pick(rng, SOLID_COLORS, n)
        cells = _pick(rng, all_cells(), 2 * n)
        return {
            "movers": [{"color": c, "start": list(cells[i]), "goal": list(cells[n + i])} for i, c in enumerate(colors)],
            "statics": [],
            "markers": [{"color": c, "cell": list(cells[n + i]), "role": "target"} for i, c in enumerate(colors)],
        }

    def prompt(self, reference: dict) -> str:
        return self.template


# Light patterns over lights in reading order (left->right or top->bottom).
PATTERNS: dict[str, tuple[int, int, int, int]] = {
    "all_on": (1, 1, 1, 1),
    "all_off": (0, 0, 0, 0),
    "only_first": (1, 0, 0, 0),
    "only_last": (0, 0, 0, 1),
    "first_two": (1, 1, 0, 0),
    "last_two": (0, 0, 1, 1),
    "alternate_first": (1, 0, 1, 0),
    "alternate_last": (0, 1, 0, 1),
}
_PATTERN_PHRASES = {
    "all_on": "all lights are on",
    "all_off": "all lights are off",
    "only_first": "only the {first}most light is on",
    "only_last": "only the {last}most light is on",
    "first_two": "only the two {first}most lights are on",
    "last_two": "only the two {last}most lights are on",
    "alternate_first": "every other light is on, starting with the {first}most light",
    "alternate_last": "every other light is on, starting with the {last}most light",
}
_ENDS = {"row": ("left", "right"), "column": ("top", "bottom")}


def pattern_phrase(pattern: str, orientation: str) -> str:
    first, last = _ENDS[orientation]
    return _PATTERN_PHRASES[pattern].format(first=first, last=last)


@dataclass(frozen=True)
class ToggleLights(Family):
    def _draw(self, rng: np.random.Generator, split: str) -> dict:
        orientation = "row" if split == "id" else "column"
        line = int(rng.integers(GRID))
        lights = [(line, i) if orientation == "row" else (i, line) for i in range(GRID)]
        pattern = _pick(rng, list(PATTERNS), 1)[0]
        start = [int(b) for b in rng.integers(0, 2, size=GRID)]
        free = [c for c in all_cells() if c not in lights]
        static_cell = _pick(rng, free, 1)[0]
        static_color = _pick(rng, [c for c in SOLID_COLORS if c != LIGHT_ON], 1)[0]
        return {
            "lights": _cells_json(lights),
            "orientation": orientation,
            "start": start,
            "target": list(PATTERNS[pattern]),
            "pattern": pattern,
            "on_color": LIGHT_ON,
            "off_color": LIGHT_OFF,
            "statics": [{"color": static_color, "cell": list(static_cell)}],
            "markers": [],
        }

    def check(self, reference: dict) -> None:
        if reference["start"] == reference["target"]:
            raise NoPlan("lights already show the target pattern")

    def wrong_pattern(self, reference: dict) -> list[int]:
        """A different described pattern, not the start state either (a wrong solution)."""
        return next(list(p) for p in PATTERNS.values() if list(p) not in (reference["target"], reference["start"]))

    def prompt(self, reference: dict) -> str:
        return self.template.format(
            pattern=pattern_phrase(reference["pattern"], reference["orientation"]), on=LIGHT_ON, off=LIGHT_OFF
        )

    def start_scene(self, reference: dict) -> Scene:
        return self.lights_scene(reference, reference["start"])

    def lights_scene(self, reference: dict, states: list[int]) -> Scene:
        lights = [
            Solid(LIGHT_ON if on else LIGHT_OFF, cell(c)) for c, on in zip(reference["lights"], states, strict=True)
        ]
        statics = [Solid(s["color"], cell(s["cell"])) for s in reference["statics"]]
        return Scene(tuple(lights + statics))

    def solve(
        self, reference: dict, rng: np.random.Generator | None = None, target: list[int] | None = None
    ) -> list[Scene]:
        """Lights switch one at a time (in reading order, or shuffled by ``rng``) to ``target``."""
        target = reference["target"] if target is None else target
        flips = [i for i, (a, b) in enumerate(zip(reference["start"], target, strict=True)) if a != b]
        if rng is not None:
            flips = [flips[i] for i in rng.permutation(len(flips))]
        states = [list(reference["start"])]
        for i in flips:
            states.append(list(states[-1]))
            states[-1][i] = target[i]
        return [self.lights_scene(reference, states[k]) for k in schedule(len(flips))]


_COLOR_WORDS = tuple(SOLID_COLORS + [FORBIDDEN_COLOR])
FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        ReachTarget(
            name="reach_target",
            category="Spatiality",
            template=(
                "Move the {agent} square to the {target} outlined cell, one cell at a time. "
                "The other squares stay where they are."
            ),
            slot_values={"agent": _COLOR_WORDS, "target": _COLOR_WORDS},
        ),
        AvoidForbidden(
            name="avoid_forbidden",
            category="Abstraction",
            template=(
                "Move the {agent} square to the {target} outlined cell, one cell at a time, without entering the "
                "{forbidden} outlined cells. The other squares stay where they are."
            ),
            slot_values={"agent": _COLOR_WORDS, "target": _COLOR_WORDS, "forbidden": _COLOR_WORDS},
        ),
        MatchColors(
            name="match_colors",
            category="Perception",
            template=(
                "Move each square onto the outlined cell of the same color, one cell at a time. "
                "The squares keep their colors."
            ),
            slot_values={},
        ),
        ToggleLights(
            name="toggle_lights",
            category="Transformation",
            template="Switch the lights so that {pattern}. A {on} light is on and a {off} light is off. Nothing moves.",
            slot_values={
                "pattern": tuple(pattern_phrase(p, o) for p in PATTERNS for o in _ENDS),
                "on": _COLOR_WORDS,
                "off": _COLOR_WORDS,
            },
        ),
    )
}


def vocabulary() -> list[str]:
    """Every token any micro prompt can contain (lowercase words and punctuation), sorted."""
    return sorted(set().union(*(f.vocabulary() for f in FAMILIES.values())))
