"""The scorer oracle (`teacher=micro_oracle`): the micro scorer's checks as a differentiable teacher for vlmteach."""

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from benchmarks.micro.corruptions import render_solution, variants
from benchmarks.micro.dataset import generate_instances
from benchmarks.micro.oracle import ScorerOracle
from benchmarks.micro.scorer import score_clip
from benchmarks.micro.world import CELL, CORE_SPAN, PALETTE
from benchmarks.micro.questions import questions_for
from harness.frames import clip_to_frames, frames_to_clip
from harness.method import MethodContext
from harness.types import Instance, UserError
from harness.vlmteach.method import VlmTeach
from lab.micro.training import data
from lab.micro.training.measure import load_student

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def instances():
    return [x for split in ("id", "ood") for x in generate_instances(split, 2, seed=5)]


@pytest.fixture(scope="module")
def oracle():
    return instantiate(OmegaConf.load(ROOT / "conf/teacher/micro_oracle.yaml"))


def test_config_builds_the_oracle_with_its_settings(oracle):
    assert isinstance(oracle, ScorerOracle)
    assert (oracle.color_scale, oracle.sharpness, oracle.margin) == (15.0, 40.0, 0.1)


def test_it_answers_as_the_scorer_on_every_variant_clean_and_degraded(oracle, instances):
    generator = torch.Generator().manual_seed(0)
    checked = 0
    for x in instances:
        queries = oracle.synthesize_queries(x)
        assert queries.all == [q.text for q in questions_for(x)][:4]
        for name in variants(x.task):
            frames = clip_to_frames(render_solution(x, name, seed=1))
            for clip_frames in (frames, data.degrade(frames[None], generator, max_blur=0.7, max_noise=0.03)[0]):
                labels = data.question_labels(x, frames_to_clip(clip_frames))
                answers = np.array(oracle.p_yes(clip_frames, queries.all)) > 0.5
                assert answers.tolist() == (labels > 0.5).tolist(), (x.id, name)
                checked += 1
    assert checked > 100


def test_its_gradient_switches_the_lights_the_goal_asks_for(oracle, instances):
    x = next(x for x in instances if x.task == "toggle_lights")
    queries = oracle.synthesize_queries(x)
    frames = clip_to_frames(render_solution(x, "wrong_target", seed=1)).requires_grad_(True)
    assert score_clip(x, frames_to_clip(frames)).scores["goal"] == 0.0
    optimiser = torch.optim.Adam([frames], lr=0.02)
    for _ in range(100):
        loss = oracle.yes_nll(frames, [queries.goal])[0]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert oracle.p_yes(frames, [queries.goal])[0] > 0.9
    assert score_clip(x, frames_to_clip(frames)).scores["goal"] == 1.0


def test_a_core_at_the_scorers_threshold_is_not_a_yes(oracle, instances):
    """A goal cell 9/16 agent-coloured is read as the agent by the scorer (>= 1/2) but not by the oracle
    (margin 0.1): the loop cannot earn a yes by pushing a cell just past the scorer's threshold."""
    x = next(x for x in instances if x.task == "reach_target")
    mover = x.reference["movers"][0]
    clip = render_solution(x, "correct", seed=1)
    r, c = mover["goal"]
    core = clip[-1, r * CELL:(r + 1) * CELL, c * CELL:(c + 1) * CELL][CORE_SPAN, CORE_SPAN]
    agent = np.zeros(core.shape[:2], dtype=bool)
    agent.flat[:9] = True
    core[~agent], core[agent] = PALETTE["background"], PALETTE[mover["color"]]
    assert score_clip(x, clip).scores["goal"] == 1.0
    queries = oracle.synthesize_queries(x)
    assert oracle.p_yes(clip_to_frames(clip), [queries.goal])[0] < 0.5
    without_margin = ScorerOracle(margin=0.0)
    without_margin.synthesize_queries(x)
    assert without_margin.p_yes(clip_to_frames(clip), [queries.goal])[0] > 0.5


def test_it_refuses_what_it_cannot_answer(oracle, instances):
    oracle.synthesize_queries(instances[0])
    frames = clip_to_frames(render_solution(instances[0], "correct", seed=1))
    with pytest.raises(UserError, match="only the questions it wrote"):
        oracle.yes_nll(frames, ["Is the video nice?"])
    with pytest.raises(ValueError, match="all 17 frames"):
        oracle.yes_nll(frames[::2], oracle.synthesize_queries(instances[0]).all)
    with pytest.raises(UserError, match="micro-world instances only"):
        oracle.synthesize_queries(Instance(id="ruler/x", bench="ruler", task="rotation", category="Spatiality", split="",
                                          prompt="Rotate the chair.", num_frames=17, height=32, width=32, fps=8))
    with pytest.raises(UserError, match="no free text"):
        oracle.generate("Rewrite the prompt.")


def test_vlmteach_under_the_oracle_is_scored_on_its_own_one_step_prediction(oracle, instances):
    x = next(x for x in instances if x.task == "avoid_forbidden")
    student = load_student(ROOT / "benchmarks/micro/weights/student")
    method = VlmTeach(num_steps=2, early_stop=False, lr=1e-3)
    out = method.run(x, MethodContext(student=student, teacher=oracle, bench=None, seed=7))
    questions = [q.text for q in questions_for(x)][:4]
    assert out.trace.loss_questions == questions
    cond = student.encode(x)
    noise = student.make_noise(cond, 7)
    with torch.no_grad():
        first = student.decode(student.predict_x0(cond, noise, student.sigmas[0]), light=True)
    np.testing.assert_allclose(out.trace.per_step[0].p_yes, oracle.p_yes(first, questions), rtol=1e-5)
    assert out.trace.per_step[-1].p_yes != out.trace.per_step[0].p_yes
