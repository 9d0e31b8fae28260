"""The micro scorer: ground truth passes (also through mp4 and blur), every corruption fails."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from benchmarks.micro import FAMILIES, generate_instances, render_solution, score_clip, variants
from benchmarks.micro.scorer import GOAL_WEIGHT
from benchmarks.micro.world import render_clip
from harness.types import ScoringError
from harness.video import read_mp4, write_mp4

N_PER_FAMILY = 3
INSTANCES = generate_instances("id", N_PER_FAMILY, seed=123) + generate_instances("ood", N_PER_FAMILY, seed=123)
BY_TASK = {task: [x for x in INSTANCES if x.task == task] for task in FAMILIES}
MOVER_TASKS = ["reach_target", "avoid_forbidden", "match_colors"]


def roundtrip(tmp_path, clip: np.ndarray) -> np.ndarray:
    path = tmp_path / "clip.mp4"
    write_mp4(path, clip, fps=8)
    return read_mp4(path)


def blurred(clip: np.ndarray, sigma: float = 0.6, noise: float = 4.0) -> np.ndarray:
    """A generative model's look: soft edges and pixel noise."""
    soft = gaussian_filter(clip.astype(np.float32), sigma=(0, sigma, sigma, 0))
    soft += np.random.default_rng(0).normal(0, noise, size=soft.shape)
    return np.clip(soft.round(), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("task", list(FAMILIES))
def test_ground_truth_scores_high_in_memory_after_mp4_and_blur(task, tmp_path):
    for instance in BY_TASK[task]:
        clip = render_solution(instance)
        assert np.array_equal(clip[0], instance.first_frame)
        for name, video in [
            ("memory", clip),
            ("mp4", roundtrip(tmp_path, clip)),
            ("blur", blurred(roundtrip(tmp_path, clip))),
        ]:
            result = score_clip(instance, video)
            assert result.score >= 0.95, (instance.id, name, result)
            assert result.scores["solved"] == 1.0


@pytest.mark.parametrize("task", MOVER_TASKS + ["toggle_lights"])
def test_any_valid_plan_scores_high_not_only_the_canonical_one(task):
    distinct = 0
    for instance in BY_TASK[task]:
        clips = [render_solution(instance, seed=s) for s in range(4)]
        assert all(score_clip(instance, c).score >= 0.95 for c in clips), instance.id
        distinct = max(distinct, len({c.tobytes() for c in clips}))
    assert distinct > 1  # seeds do draw other paths / switching orders, and they pass too


def corrupted_scores(task: str, variant: str) -> list:
    return [score_clip(x, render_solution(x, variant)) for x in BY_TASK[task]]


@pytest.mark.parametrize("task", list(FAMILIES))
def test_wrong_target_fails_the_goal_only(task):
    for result in corrupted_scores(task, "wrong_target"):
        assert result.score <= 0.6 and result.scores["goal"] == 0.0
        assert result.score == pytest.approx(1 - GOAL_WEIGHT)  # the process itself was valid


@pytest.mark.parametrize("task", MOVER_TASKS)
def test_teleport_breaks_continuity(task):
    for result in corrupted_scores(task, "teleport"):
        assert result.score <= 0.6
        assert result.scores["goal"] == 1.0 and result.scores["continuity"] == 0.0
        assert any("jumps" in v for v in result.details["violations"])


@pytest.mark.parametrize("task", list(FAMILIES))
def test_vanished_object_breaks_integrity(task):
    key = "lights_intact" if task == "toggle_lights" else "intact"
    for result in corrupted_scores(task, "vanish"):
        assert result.score <= 0.6 and result.scores[key] == 0.0


@pytest.mark.parametrize("task", list(FAMILIES))
def test_recolored_object_breaks_integrity(task):
    key = "lights_intact" if task == "toggle_lights" else "intact"
    for result in corrupted_scores(task, "recolor"):
        assert result.score <= 0.6 and result.scores[key] == 0.0


def test_entering_a_forbidden_cell_is_caught():
    for instance in BY_TASK["avoid_forbidden"]:
        clip = render_solution(instance, "enter_forbidden")
        result = score_clip(instance, clip)
        assert result.score <= 0.6
        assert result.scores["goal"] == 1.0 and result.scores["continuity"] == 1.0
        assert result.scores["avoids_forbidden"] == 0.0


@pytest.mark.parametrize("task", list(FAMILIES))
def test_static_video_misses_the_goal(task):
    for result in corrupted_scores(task, "static"):
        assert result.score <= 0.6 and result.scores["goal"] == 0.0


def test_moving_a_distractor_breaks_others_static():
    instance = BY_TASK["reach_target"][0]
    family = FAMILIES["reach_target"]
    scenes = family.solve(instance.reference)
    static_index = len(instance.reference["movers"])  # statics follow the movers
    here = scenes[-1].solids[static_index].cell
    free = next(
        (r, c)
        for r in range(4)
        for c in range(4)
        if all(o.cell != (r, c) for o in (*scenes[-1].solids, *scenes[-1].markers))
    )
    moved = scenes[:10] + [s.move(static_index, free) for s in scenes[10:]]
    result = score_clip(instance, render_clip(moved))
    assert here != free and result.scores["others_static"] == 0.0 and result.score <= 0.6


def test_flickering_light_is_caught():
    instance = BY_TASK["toggle_lights"][0]
    family = FAMILIES["toggle_lights"]
    ref = instance.reference
    flipped = [1 - s for s in ref["start"]]
    frames = [ref["start"]] * 4 + [flipped] * 4 + [ref["start"]] * 4 + [ref["target"]] * 5
    result = score_clip(instance, render_clip([family.lights_scene(ref, f) for f in frames]))
    assert result.scores["goal"] == 1.0 and result.scores["no_flicker"] == 0.0 and result.score <= 0.6


def test_every_listed_variant_renders_and_only_correct_solves():
    for instance in INSTANCES:
        for variant in variants(instance.task):
            clip = render_solution(instance, variant)
            assert clip.shape == (17, 32, 32, 3) and clip.dtype == np.uint8
            assert (score_clip(instance, clip).scores["solved"] == 1.0) == (variant == "correct"), (
                instance.id,
                variant,
            )


def test_unknown_variant_is_rejected():
    with pytest.raises(ValueError, match="enter_forbidden"):
        render_solution(BY_TASK["reach_target"][0], "enter_forbidden")


def test_noise_scores_zero_but_wrong_shapes_raise():
    noise = np.random.default_rng(0).integers(0, 256, size=(17, 32, 32, 3), dtype=np.uint8)
    for task in FAMILIES:
        assert score_clip(BY_TASK[task][0], noise).score == 0.0, task
    instance = INSTANCES[0]
    for bad in [noise[:9], noise[:, :16], noise.astype(np.float32), noise[..., 0]]:
        with pytest.raises(ScoringError, match="expected a uint8 clip"):
            score_clip(instance, bad)
