"""Rule-based scoring of a micro-world video from its frames and the task spec alone.

Frames are read into cell labels (``detect``); then a binary goal check on the last frame and
binary process checks over all frames:

- movers: ``continuity`` (every mover moves at most one cell, 4-connected, between consecutive
  frames where it is seen), ``intact`` (in every frame each mover is seen in exactly one cell and
  the number of solids equals the spec's), ``others_static`` (static squares stay in their cells;
  markers stay visible wherever no solid covers them), ``avoids_forbidden`` (avoid_forbidden
  only: no mover is ever seen in a forbidden cell); goal: every mover ends on its goal cell.
- lights: ``lights_intact`` (every light cell shows an on or off light in every frame and no
  other solid appears), ``others_static``, ``no_flicker`` (each light switches at most once);
  goal: the last frame shows the target pattern.

Rules about a tracked object (``continuity``, ``avoids_forbidden``, ``no_flicker``) need it to be
seen in at least ``MIN_SEEN_FRACTION`` of the frames; otherwise they cannot be verified and fail
(so a noise video scores 0, not the vacuous credit of an empty track).

Score = GOAL_WEIGHT * goal * min(process) + (1 - GOAL_WEIGHT) * mean(process): the goal counts
only when reached by a valid process (the paper's "solved"), the process half gives partial
credit. So solved = 1.0, goal missed with a clean process = 0.4, goal reached while breaking k
of n process rules = 0.4 * (n - k) / n.
"""

from __future__ import annotations

import numpy as np

from benchmarks.micro.detect import NONE, cell_labels, color_index
from benchmarks.micro.tasks import cell
from benchmarks.micro.world import NUM_FRAMES, SIZE, Cell, manhattan
from harness.types import Instance, Score, ScoringError

GOAL_WEIGHT = 0.6
MIN_SEEN_FRACTION = 0.5
MAX_REPORTED_VIOLATIONS = 10  # kept in Score.details, so records stay small


def score_clip(instance: Instance, clip: np.ndarray) -> Score:
    """Score an in-memory uint8 clip [17, 32, 32, 3] against the instance's task spec."""
    expected = (instance.num_frames, SIZE, SIZE, 3)
    if not isinstance(clip, np.ndarray) or clip.dtype != np.uint8 or clip.shape != expected:
        got = f"{clip.dtype} {clip.shape}" if isinstance(clip, np.ndarray) else type(clip).__name__
        raise ScoringError(f"{instance.id}: expected a uint8 clip of shape {expected}, got {got}")
    if instance.num_frames != NUM_FRAMES:
        raise ScoringError(
            f"{instance.id}: micro instances have {NUM_FRAMES} frames, this one says {instance.num_frames}"
        )
    solids, markers = cell_labels(clip)
    if instance.task == "toggle_lights":
        goal, checks, violations = _judge_lights(instance.reference, solids)
    else:
        goal, checks, violations = _judge_movers(instance.reference, solids, markers)
    process = float(np.mean(list(checks.values())))
    score = GOAL_WEIGHT * goal * min(checks.values()) + (1 - GOAL_WEIGHT) * process
    solved = float(goal == 1.0 and min(checks.values()) == 1.0)
    details = {"violations": violations[:MAX_REPORTED_VIOLATIONS], "num_violations": len(violations)}
    return Score(score=score, scores={"goal": goal, **checks, "solved": solved}, details=details)


def _at(labels: np.ndarray, where: Cell) -> np.ndarray:
    return labels[:, where[0], where[1]]


def _track(solids: np.ndarray, color: str) -> list[Cell | None]:
    """Per frame, the one cell holding a solid of ``color``; None if absent or duplicated."""
    track: list[Cell | None] = []
    for frame in solids:
        found = np.argwhere(frame == color_index(color))
        track.append((int(found[0][0]), int(found[0][1])) if len(found) == 1 else None)
    return track


def _judge_movers(
    reference: dict, solids: np.ndarray, markers: np.ndarray
) -> tuple[float, dict[str, float], list[str]]:
    tracks = {m["color"]: _track(solids, m["color"]) for m in reference["movers"]}
    n_solids = len(reference["movers"]) + len(reference["statics"])

    broken = [
        f"frame {t}: {color} square not seen exactly once"
        for color, track in tracks.items()
        for t, c in enumerate(track)
        if c is None
    ]
    counts = (solids != NONE).sum(axis=(1, 2))
    broken += [f"frame {t}: {n} squares, expected {n_solids}" for t, n in enumerate(counts) if n != n_solids]

    jumps = []
    for color, track in tracks.items():
        seen = [(t, c) for t, c in enumerate(track) if c is not None]
        if len(seen) < MIN_SEEN_FRACTION * len(track):
            jumps.append(f"{color} square seen in only {len(seen)} frames: its motion cannot be verified")
        jumps += [
            f"frame {t}: {color} square jumps {manhattan(a, b)} cells"
            for (_, a), (t, b) in zip(seen, seen[1:], strict=False)
            if manhattan(a, b) > 1
        ]

    moved = []
    for s in reference["statics"]:
        if not np.all(_at(solids, cell(s["cell"])) == color_index(s["color"])):
            moved.append(f"{s['color']} square left {s['cell']}")
    for m in reference["markers"]:
        uncovered = _at(solids, cell(m["cell"])) == NONE
        if not np.all(_at(markers, cell(m["cell"]))[uncovered] == color_index(m["color"])):
            moved.append(f"{m['color']} outline at {m['cell']} disappeared")

    checks = {"continuity": float(not jumps), "intact": float(not broken), "others_static": float(not moved)}
    violations = broken + jumps + moved
    forbidden = {cell(m["cell"]) for m in reference["markers"] if m["role"] == "forbidden"}
    if forbidden:
        entered = [
            f"frame {t}: {color} square on forbidden {c}"
            for color, track in tracks.items()
            for t, c in enumerate(track)
            if c in forbidden
        ]
        entered += [
            f"{color} square mostly unseen: avoidance cannot be verified"
            for color, track in tracks.items()
            if sum(c is not None for c in track) < MIN_SEEN_FRACTION * len(track)
        ]
        checks["avoids_forbidden"] = float(not entered)
        violations += entered

    goal = float(all(tracks[m["color"]][-1] == cell(m["goal"]) for m in reference["movers"]))
    return goal, checks, violations


def _judge_lights(reference: dict, solids: np.ndarray) -> tuple[float, dict[str, float], list[str]]:
    on, off = color_index(reference["on_color"]), color_index(reference["off_color"])
    labels = np.stack([_at(solids, cell(c)) for c in reference["lights"]], axis=1)  # [T, n_lights]
    states = np.where(labels == on, 1, np.where(labels == off, 0, -1))
    n_solids = len(reference["lights"]) + len(reference["statics"])
    counts = (solids != NONE).sum(axis=(1, 2))

    broken = [f"frame {t}: light {i} is neither on nor off" for t, i in np.argwhere(states == -1)]
    broken += [f"frame {t}: {n} squares, expected {n_solids}" for t, n in enumerate(counts) if n != n_solids]
    moved = [
        f"{s['color']} square left {s['cell']}"
        for s in reference["statics"]
        if not np.all(_at(solids, cell(s["cell"])) == color_index(s["color"]))
    ]
    flicker = []
    for i in range(states.shape[1]):
        seen = states[:, i][states[:, i] >= 0]
        if len(seen) < MIN_SEEN_FRACTION * len(states):
            flicker.append(f"light {i} seen in only {len(seen)} frames: its switching cannot be verified")
        elif np.count_nonzero(np.diff(seen)) > 1:
            flicker.append(f"light {i} switches {np.count_nonzero(np.diff(seen))} times")

    checks = {"lights_intact": float(not broken), "others_static": float(not moved), "no_flicker": float(not flicker)}
    goal = float(states[-1].tolist() == list(reference["target"]))
    return goal, checks, broken + moved + flicker
