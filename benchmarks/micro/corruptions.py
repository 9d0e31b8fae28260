"""Ground-truth and plausible-but-wrong videos of an instance (scorer tests, training negatives).

Variants (each breaks exactly one rule of the correct solution):
- ``correct``: a shortest valid plan (movers) or lights switched one by one;
- ``wrong_target``: a valid process towards the wrong goal (a decoy marker, swapped markers, a
  different light pattern);
- ``teleport``: the first mover jumps from its start straight to its goal (movers only);
- ``vanish``: the first object is missing in frames 6-10;
- ``recolor``: the first object takes an unused colour from frame 8 on;
- ``enter_forbidden``: the shortest route that steps on a forbidden cell (avoid_forbidden only);
- ``static``: the first frame, frozen.
"""

from __future__ import annotations

import numpy as np

from benchmarks.micro.tasks import (
    FAMILIES,
    SOLID_COLORS,
    AvoidForbidden,
    MoverFamily,
    ToggleLights,
    plan_moves,
    scenes_from_moves,
)
from benchmarks.micro.world import NUM_FRAMES, Scene, render_clip
from harness.types import Instance

CORRECT = "correct"
VANISH_FRAMES = range(6, 11)
RECOLOR_FROM = 8


def variants(task: str) -> list[str]:
    """The variants that exist for a task family, ``correct`` first."""
    family = FAMILIES[task]
    names = [CORRECT, "wrong_target"]
    if isinstance(family, MoverFamily):
        names.append("teleport")
    names += ["vanish", "recolor"]
    if isinstance(family, AvoidForbidden):
        names.append("enter_forbidden")
    return names + ["static"]


def solution_scenes(
    task: str, reference: dict, variant: str = CORRECT, rng: np.random.Generator | None = None
) -> list[Scene]:
    """One scene per frame for ``variant``; ``rng`` picks among equally good plans (None: canonical)."""
    if variant not in variants(task):
        raise ValueError(f"variant {variant!r} does not exist for {task}; choose from {variants(task)}")
    family = FAMILIES[task]
    start = family.start_scene(reference)
    if variant == CORRECT:
        return family.solve(reference, rng)
    if variant == "static":
        return [start] * NUM_FRAMES
    if variant == "wrong_target":
        if isinstance(family, ToggleLights):
            return family.solve(reference, rng, target=family.wrong_pattern(reference))
        return scenes_from_moves(start, plan_moves(reference, family.wrong_goals(reference), rng))
    if variant == "teleport":
        moves = plan_moves(reference, family.goals(reference), rng)
        return scenes_from_moves(start, [(0, family.goals(reference)[0])] + [m for m in moves if m[0] != 0])
    if variant == "enter_forbidden":
        return scenes_from_moves(start, family.forbidden_detour(reference, rng))
    scenes = family.solve(reference, rng)
    if variant == "vanish":
        return [s.without(0) if t in VANISH_FRAMES else s for t, s in enumerate(scenes)]
    # recolor: a colour no object or marker of this instance uses
    used = {o.color for s in scenes for o in (*s.solids, *s.markers)}
    new_color = next(c for c in SOLID_COLORS if c not in used)
    return [s.recolor(0, new_color) if t >= RECOLOR_FROM else s for t, s in enumerate(scenes)]


def render_solution(instance: Instance, variant: str = CORRECT, seed: int | None = None) -> np.ndarray:
    """The instance's video for ``variant`` as a uint8 clip [17, 32, 32, 3].

    ``seed`` draws a random one of the equally short plans (training diversity); None is canonical.
    """
    rng = None if seed is None else np.random.default_rng(seed)
    return render_clip(solution_scenes(instance.task, instance.reference, variant, rng))
