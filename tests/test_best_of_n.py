"""best_of_n tells its teacher when the frames it shows were taken, as vlmteach does."""

from __future__ import annotations

from omegaconf import OmegaConf
from hydra.utils import instantiate

from baselines.sampling import BestOfN
from benchmarks.micro import generate_instances
from harness.config import CONF_DIR
from harness.frames import uniform_frame_indices
from harness.method import MethodContext
from harness.types import Queries


class RecordingTeacher:
    """Answers every question with P(Yes) = 0.5 and records what it was shown."""

    def __init__(self):
        self.shown = []

    def synthesize_queries(self, instance, max_process=3):
        return Queries(goal="Is the goal reached?", process=["Is it whole?"])

    def p_yes(self, frames, questions, clock=None):
        self.shown.append((frames.shape[0], clock))
        return [0.5] * len(questions)


def test_best_of_n_shows_the_teacher_the_frames_true_clock():
    cfg = OmegaConf.load(CONF_DIR / "student" / "micro.yaml")
    student = instantiate(cfg, device="cpu")
    instance = generate_instances("id", 1, seed=3)[0]
    teacher = RecordingTeacher()
    BestOfN(n=2, num_frames=5).run(instance, MethodContext(student=student, teacher=teacher, bench=None, seed=1))
    expected = uniform_frame_indices(instance.num_frames, 5)
    for shown, clock in teacher.shown:
        assert shown == 5 and clock.fps == instance.fps and clock.total_num_frames == instance.num_frames
        assert list(clock.frames_indices) == expected
    assert len(teacher.shown) == 2
