"""RULER-Bench judging: official request layout, format check, retries, cache, scores."""

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from benchmarks.ruler import ApiJudge, LocalVlmJudge, RulerBenchmark
from benchmarks.ruler.fixtures import STAND_IN_PROMPT, FakeChatServer, write_tiny_release
from benchmarks.ruler.labels import ResponseFormatError, parse_labels, reasoning_text
from benchmarks.ruler.request import ImageInput, build_request, sample_frames, shrink
from harness.types import ScoringError
from harness.video import write_mp4


def reply(labels, think="The ball falls."):
    return f"<think>{think}</think>\n<answer>{json.dumps(labels)}</answer>"


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return write_tiny_release(tmp_path_factory.mktemp("ruler"))


@pytest.fixture(scope="module")
def instances(release):
    return {i.id: i for i in RulerBenchmark(data_dir=str(release), hub_id=None).instances()}


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """An 89-frame 16 fps clip, wider than 512 so the judge's frames are shrunk."""
    path = tmp_path_factory.mktemp("videos") / "physics" / "0.mp4"
    clip = np.zeros((89, 272, 544, 3), np.uint8)
    clip[:, :, :272] = np.arange(89, dtype=np.uint8)[:, None, None, None] * 2  # frame-dependent
    write_mp4(path, clip, fps=16)
    return path


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("TEST_JUDGE_KEY", "sk-test")


def stand_in_prompt(tmp_path):
    path = tmp_path / "stand_in_system_prompt.txt"
    path.write_text(STAND_IN_PROMPT)
    return str(path)


def api_judge(server, tmp_path, **kw):
    kw = {"api_key_env": "TEST_JUDGE_KEY", "max_retries": 1, "backoff_s": 0.0, "retry_backoff_s": 0.0,
          "cache_dir": str(tmp_path / "cache"), "system_prompt_path": stand_in_prompt(tmp_path), **kw}
    return ApiJudge(base_url=server.base_url, **kw)


# --- format check ----------------------------------------------------------------------------


def test_parse_labels_accepts_official_replies():
    assert parse_labels(reply(["Good", "Poor"]), 2) == ["Good", "Poor"]
    fenced = "```xml\n<think>x</think><answer>\n[\"Medium\"]\n</answer>\n```"
    assert parse_labels(fenced, 1) == ["Medium"]
    assert reasoning_text(fenced) == "x"


@pytest.mark.parametrize(
    "text, why",
    [
        ('["Good", "Poor"]', "no <answer>"),
        ("<answer>Good, Poor</answer>", "not JSON"),
        ('<answer>{"1": "Good"}</answer>', "not a list"),
        ('<answer>["Good"]</answer>', "1 labels for 2 questions"),
        ('<answer>["Good", "Excellent"]</answer>', "invalid labels"),
        ('<answer>["good", "poor"]</answer>', "invalid labels"),  # case-sensitive, as upstream
        ("", "no <answer>"),
    ],
)
def test_parse_labels_rejects_what_upstream_rejects(text, why):
    with pytest.raises(ResponseFormatError, match=why):
        parse_labels(text, 2)


# --- request layout --------------------------------------------------------------------------


def test_frames_every_int_fps_over_2_and_longest_side_512(video):
    frames = sample_frames(video)
    assert len(frames) == 12  # indices 0, 8, ..., 88
    assert {f.shape for f in frames} == {(256, 512, 3)}
    assert [int(f[0, 0, 0]) for f in frames] == pytest.approx([2 * i for i in range(0, 89, 8)], abs=2)
    assert shrink(np.zeros((300, 200, 3), np.uint8)).shape == (300, 200, 3)  # small frames untouched
    assert shrink(np.zeros((1000, 300, 3), np.uint8)).shape == (512, 153, 3)  # int(300 * 0.512)


def test_frames_are_resized_and_encoded_as_upstreams_opencv_calls():
    """eval.py resizes with cv2.resize(..., INTER_AREA) and encodes with cv2.imencode('.jpg') on BGR frames."""
    import cv2

    from harness.chat_api import encode_jpeg

    frame = np.random.default_rng(0).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    ours = shrink(frame)
    assert np.array_equal(ours, cv2.resize(frame, (512, 288), interpolation=cv2.INTER_AREA))
    ok, upstream = cv2.imencode(".jpg", np.ascontiguousarray(ours[..., ::-1]))
    assert ok and encode_jpeg(ours) == upstream.tobytes()


def test_request_follows_the_official_order(instances, video):
    inst = instances["ruler/physics/0"]
    request = build_request(inst, video)
    kinds = ["img" if isinstance(p, ImageInput) else p for p in request.parts]
    questions = [f"\n# Question {i}:\n{q}\n" for i, (_, q) in enumerate(inst.reference["checklist"], start=1)]
    assert kinds == [
        "\n## Input Image:\n", "img",
        f"\n## Input Prompt:\n{inst.prompt}\n",
        "\n## Ground truth Image:\n", "img",
        "\n## Implicit Explanation:\nGravity pulls the ball down to the floor.\n",
        "\n## Video to evaluate:\n", *["img"] * 12,
        "\n## CheckList Questions:\n", *questions,
    ]
    assert "Rule Coherence" not in "".join(p for p in request.parts if isinstance(p, str))  # metric names hidden
    assert request.parts[1].path.name == "physics_0.png" and request.parts[4].path.name == "physics_0.png"
    assert request.n_questions == 5 and request.n_images == 14


def test_request_with_input_video_and_t2v(instances, video):
    vision = build_request(instances["ruler/color/0"], video)
    texts = [p for p in vision.parts if isinstance(p, str)]
    assert texts[:4] == ["\n## Input Image:\n", "\n## Input Prompt:\nContinue the colour pattern.\n",
                         "\n## Implicit Explanation:\nThe next square is red.\n", "\n## Input Video:\n"]
    start = vision.parts.index("\n## Input Video:\n")
    assert vision.parts[start + 4] == "\n## Video to evaluate:\n"  # 9 frames at 8 fps -> 3 sampled
    t2v = build_request(instances["ruler/physics/1"], video)
    assert t2v.parts[0] == "\n## Input Prompt:\nIce melts in the sun.\n"
    assert t2v.n_images == 12


# --- API judge end to end --------------------------------------------------------------------


def test_score_end_to_end_through_an_http_endpoint(release, instances, video, tmp_path):
    bench_labels = ["Good", "Medium", "Poor", "Good", "Poor"]  # RC, VC, VF, IF, RC
    with FakeChatServer([reply(bench_labels)]) as server:
        judge = api_judge(server, tmp_path)
        bench = RulerBenchmark(data_dir=str(release), hub_id=None, judge=judge)
        score = bench.score(instances["ruler/physics/0"], video)
    assert score.scores == {"RC": 1.0, "VC": 1.0, "VF": 0.0, "IF": 2.0}
    assert score.score == pytest.approx(50.0)  # mean(1, 1, 0, 2) / 2 * 100
    assert score.details["labels"] == bench_labels and score.details["judge"] == "o3"
    assert score.details["reasoning"] == "The ball falls." and score.details["cached"] is False

    (body,) = server.requests
    assert body["model"] == "o3" and body["presence_penalty"] == 0 and "temperature" not in body
    system, user = body["messages"]
    assert system["role"] == "system" and "<answer>" in system["content"] and "Poor" in system["content"]
    content = user["content"]
    assert [c["type"] for c in content[:6]] == ["text", "image_url", "text", "text", "image_url", "text"]
    input_url = content[1]["image_url"]["url"]
    assert input_url.startswith("data:image/png;base64,")  # the file as it is
    frame_url = content[7]["image_url"]["url"]
    assert frame_url.startswith("data:image/jpeg;base64,")
    frame = Image.open(io.BytesIO(base64.b64decode(frame_url.split(",", 1)[1])))
    assert frame.size == (512, 256)
    assert sum(c["type"] == "image_url" for c in content) == 14
    assert content[-1] == {"type": "text", "text": "\n# Question 5:\nDoes the ball come to rest on the floor?\n"}


def test_unparsable_reply_is_retried_then_accepted(instances, video, tmp_path):
    with FakeChatServer(["I think it is fine.", reply(["Good", "Poor"], think="")]) as server:
        verdict = api_judge(server, tmp_path, max_attempts=3).judge(build_request(instances["ruler/chess/0"], video))
    assert verdict.labels == ["Good", "Poor"] and verdict.attempts == 2
    assert len(server.requests) == 2


def test_attempts_exhausted_raise_scoring_error_and_cache_nothing(instances, video, tmp_path):
    request = build_request(instances["ruler/chess/0"], video)
    with FakeChatServer(default=reply(["Good"])) as server:  # always one label for two questions
        with pytest.raises(ScoringError, match="no valid reply in 3 attempts.*1 labels for 2 questions"):
            api_judge(server, tmp_path, max_attempts=3).judge(request)
    assert len(server.requests) == 3
    assert not list((tmp_path / "cache").rglob("*.json"))


def test_api_failure_after_retries_is_a_scoring_error(instances, video, tmp_path):
    with FakeChatServer(default=None) as server:  # every call: HTTP 500
        with pytest.raises(ScoringError, match="failed after 2 attempts"):
            api_judge(server, tmp_path, max_retries=1).judge(build_request(instances["ruler/chess/0"], video))


def test_missing_key_is_a_scoring_error_naming_the_variable(instances, video, tmp_path, monkeypatch):
    monkeypatch.delenv("TEST_JUDGE_KEY")
    with FakeChatServer([reply(["Good", "Poor"])]) as server:
        with pytest.raises(ScoringError, match="TEST_JUDGE_KEY is not set"):
            api_judge(server, tmp_path).judge(build_request(instances["ruler/chess/0"], video))
    assert server.requests == []


def test_cache_hit_avoids_a_second_call_and_is_keyed_by_video(instances, video, tmp_path):
    inst = instances["ruler/chess/0"]
    other = tmp_path / "other.mp4"
    write_mp4(other, np.full((17, 32, 32, 3), 90, np.uint8), fps=16)
    with FakeChatServer(default=reply(["Medium", "Good"])) as server:
        first = api_judge(server, tmp_path).judge(build_request(inst, video))
        again = api_judge(server, tmp_path).judge(build_request(inst, video))  # a fresh judge, same cache dir
        assert len(server.requests) == 1
        api_judge(server, tmp_path).judge(build_request(inst, other))
        assert len(server.requests) == 2  # another video is another key
        api_judge(server, tmp_path, model="o3-mini").judge(build_request(inst, video))
        assert len(server.requests) == 3  # another judge model is another key
    assert (first.cached, again.cached, again.attempts) == (False, True, 0)
    assert again.labels == first.labels == ["Medium", "Good"]


def test_damaged_cache_entry_is_not_trusted(instances, video, tmp_path):
    request = build_request(instances["ruler/chess/0"], video)
    with FakeChatServer(default=reply(["Medium", "Good"])) as server:
        api_judge(server, tmp_path).judge(request)
        (entry,) = (tmp_path / "cache").rglob("*.json")
        entry.write_text(json.dumps({"raw": "<answer>[\"Good\"]</answer>"}))  # wrong length
        verdict = api_judge(server, tmp_path).judge(request)
    assert len(server.requests) == 2 and verdict.cached is False and verdict.labels == ["Medium", "Good"]
    assert json.loads(entry.read_text())["labels"] == ["Medium", "Good"]  # repaired

def test_vision_rule_and_absent_metrics_follow_cal_acc(release, instances, video, tmp_path):
    with FakeChatServer([reply(["Good", "Good", "Medium"]), reply(["Good", "Good"])]) as server:
        bench = RulerBenchmark(data_dir=str(release), hub_id=None, judge=api_judge(server, tmp_path))
        vision = bench.score(instances["ruler/color/0"], video)
        t2v = bench.score(instances["ruler/physics/1"], video)
    assert vision.score == pytest.approx((2 + 2 + 1) / 3 / 2 * 100)  # no IF in vision rule
    assert t2v.scores == {"RC": 2.0, "IF": 2.0}  # VC and VF have no question ...
    assert t2v.details["missing_metrics"] == ["VC", "VF"]
    assert t2v.score == pytest.approx(50.0)  # ... and count 0 in the official per-instance average


# --- no judge, bad video, local judge --------------------------------------------------------


def test_no_judge_and_bad_video_are_scoring_errors(release, instances, video, tmp_path):
    with pytest.raises(ScoringError, match="no judge configured: set judge=o3"):
        RulerBenchmark(data_dir=str(release), hub_id=None).score(instances["ruler/chess/0"], video)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    with FakeChatServer([reply(["Good", "Good"])]) as server:
        bench = RulerBenchmark(data_dir=str(release), hub_id=None, judge=api_judge(server, tmp_path))
        with pytest.raises(ScoringError, match="cannot read video"):
            bench.score(instances["ruler/chess/0"], broken)
        with pytest.raises(ScoringError, match="cannot read video"):
            bench.score(instances["ruler/chess/0"], tmp_path / "never_written.mp4")
    assert server.requests == []


class ScriptedTeacher:
    """Stands in for QwenVLTeacher.generate: records what it was given, answers from a script."""

    def __init__(self, replies):
        self.replies, self.calls = list(replies), []

    def generate(self, prompt, images=None, max_new_tokens=128):
        self.calls.append((prompt, images, max_new_tokens))
        return self.replies.pop(0)


def test_local_judge_flattens_the_request_in_order(instances, video, tmp_path):
    teacher = ScriptedTeacher([reply(["Poor", "Good"])])
    judge = LocalVlmJudge(teacher=teacher, model_id="tiny-vlm", max_new_tokens=64, cache_dir=str(tmp_path / "c"),
                          system_prompt_path=stand_in_prompt(tmp_path))
    verdict = judge.judge(build_request(instances["ruler/chess/0"], video))
    assert verdict.labels == ["Poor", "Good"]
    ((prompt, images, max_new_tokens),) = teacher.calls
    assert prompt.startswith(judge.system_prompt) and max_new_tokens == 64
    assert len(images) == 14 and images[0].shape == (48, 64, 3) and images[2].shape == (256, 512, 3)
    order = [prompt.index(s) for s in ("## Input Image:\n[Image 1]", "## Input Prompt:", "## Ground truth Image:\n[Image 2]",
                                       "## Video to evaluate:\n[Image 3]", "[Image 14]", "# Question 2:")]
    assert order == sorted(order)
    # A greedy local judge is not retried by default: one bad reply is a scoring error.
    bad = LocalVlmJudge(teacher=ScriptedTeacher(["no tags"]), model_id="tiny-vlm", system_prompt="paraphrase")
    with pytest.raises(ScoringError, match="no valid reply in 1 attempts"):
        bad.judge(build_request(instances["ruler/chess/0"], video))


def test_local_judge_drives_the_real_teacher_adapter(instances, tmp_path):
    """A tiny random Qwen3-VL through QwenVLTeacher.generate: it runs on the flattened request
    and, as its reply is gibberish, the instance becomes a scoring error (not a score)."""
    from teacher_fixtures import write_tiny_teacher

    from harness.teachers.qwen_vl import QwenVLTeacher

    path = write_tiny_teacher(tmp_path / "teacher", "qwen3_vl")
    teacher = QwenVLTeacher.from_pretrained(path=str(path), device="cpu")
    clip = tmp_path / "small.mp4"
    write_mp4(clip, np.full((17, 32, 64, 3), 100, np.uint8), fps=16)
    judge = LocalVlmJudge(teacher=teacher, model_id=str(path), max_new_tokens=8, cache_dir=str(tmp_path / "c"),
                          system_prompt_path=stand_in_prompt(tmp_path))
    with pytest.raises(ScoringError, match="no valid reply in 1 attempts"):
        judge.judge(build_request(instances["ruler/chess/0"], clip))
    assert not list((tmp_path / "c").rglob("*.json"))


def test_a_judge_nobody_answers_for_is_not_a_per_instance_error(instances, video, tmp_path):
    import socket

    from harness.chat_api import EndpointUnreachable

    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        base_url = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    judge = ApiJudge(base_url=base_url, api_key_env=None, max_retries=1, backoff_s=0.0, cache_dir=None,
                     system_prompt="paraphrase")
    with pytest.raises(EndpointUnreachable, match="Start the server or fix base_url"):
        judge.judge(build_request(instances["ruler/chess/0"], video))


def test_a_hung_judge_costs_an_instance_at_most_its_deadline(instances, video, tmp_path):
    from benchmarks.ruler.fixtures import Reply

    with FakeChatServer([Reply(hang=True)] * 8) as server:
        judge = api_judge(server, tmp_path, timeout_s=600, max_retries=5, max_attempts=4, deadline_s=0.5)
        with pytest.raises(ScoringError, match="no reply before the deadline"):
            judge.judge(build_request(instances["ruler/chess/0"], video))
    assert len(server.requests) == 1  # not 4 attempts x 6 requests x 600 s
