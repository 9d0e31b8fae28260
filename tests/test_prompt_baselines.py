"""prompt_rewrite and videotpo on the real micro student and teacher, and against a scripted
OpenAI-compatible endpoint on 127.0.0.1 (real HTTP)."""

from __future__ import annotations

import base64
import dataclasses
import io
import json

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import open_dict
from PIL import Image

from baselines.prompt_backends import ApiVlm, TeacherVlm
from baselines.prompt_parsing import parse_choice, parse_prompt_reply
from baselines.prompt_rewrite import ApiPromptRewrite, PromptRewrite
from baselines.sampling import candidate_seeds
from baselines.videotpo import ApiVideoTpo, VideoTpo, stacked_view
from benchmarks.micro import generate_instances
from benchmarks.ruler.fixtures import FakeChatServer
from harness.chat_api import ChatApiError
from harness.config import CONF_DIR, component_kwargs, method_needs_teacher
from harness.method import MethodContext, generate_clip
from harness.runner import Runner
from harness.seeding import derive_seed
from harness.sinks import NullSink
from harness.types import MethodFailed, UserError

SEED = 5
NEW_PROMPT = "Move the yellow square right, then down, onto the red outlined cell."
CRITIQUE_2 = 'Candidate 1 stops early. Candidate 2 reaches the cell.\n{"better": 2}'
CRITIQUE_1 = "Candidate 1 is clearly better: it keeps the other squares still."
VLM_PICK = {"selection": "vlm_pick", "critic_view": "frames"}  # conf/method/videotpo_vlm_pick.yaml


def compose_cfg(*overrides):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.fixture(scope="module")
def models():
    cfg = compose_cfg("student.device=cpu", "teacher.device=cpu")
    student = instantiate(component_kwargs(cfg, "student"), _convert_="all")
    teacher = instantiate(component_kwargs(cfg, "teacher"), _convert_="all")
    return student, teacher


@pytest.fixture(scope="module")
def instance():
    return generate_instances("id", 1, seed=3, families=["reach_target"])[0]


@pytest.fixture
def seen_prompts(models, monkeypatch):
    """Every prompt the student encodes, in order."""
    student, _ = models
    seen, encode = [], student.encode
    monkeypatch.setattr(student, "encode", lambda inst: seen.append(inst.prompt) or encode(inst))
    return seen


def run(method, models, instance, seed=SEED):
    student, teacher = models
    return method.run(instance, MethodContext(student=student, teacher=teacher, bench=None, seed=seed))


def api(server, **kw):
    return ApiVlm(model="test-vlm", base_url=server.base_url, api_key_env=None, max_retries=1, backoff_s=0.0,
                  timeout_s=10, **kw)


def image_count(body):
    return sum(part["type"] == "image_url" for part in body["messages"][0]["content"])


def request_text(body):
    return next(p["text"] for p in body["messages"][0]["content"] if p["type"] == "text")


# ------------------------------------------------------------------ parsing
@pytest.mark.parametrize("reply, expected", [
    (f'Improved prompt: "{NEW_PROMPT}"', NEW_PROMPT),
    (f"```text\n{NEW_PROMPT}\n```", NEW_PROMPT),
    (json.dumps({"Prompt": NEW_PROMPT}), NEW_PROMPT),
    (f"Here is the improved prompt:\n\n\u201c{NEW_PROMPT}\u201d", NEW_PROMPT),
    (f"**New prompt:** {NEW_PROMPT}", NEW_PROMPT),
    ("Move the square\n  right,\tthen stop.", "Move the square right, then stop."),
    ("assistant " * 64, None),  # the untrained micro teacher's degenerate reply
    (json.dumps({"goal": "Is the square on the cell?"}), None),  # JSON without a prompt
    ("Yes", None),
    ("```\n\n```", None),
    ("1 2 3 , . ; { } 4 5 6 a", None),
    ("", None),
])
def test_parse_prompt_reply(reply, expected):
    assert parse_prompt_reply(reply) == expected


@pytest.mark.parametrize("reply, expected", [
    ('Both have flaws.\n{"analysis": "...", "better": 2}', 1),
    ('{"better": "Candidate 1"}', 0),
    ("Candidate 2 is clearly better than candidate 1.", 1),
    ("I prefer video 1.", 0),
    ("Preferred: Candidate 2", 1),
    ("2", 1),
    ('{"better": 3}', None),  # out of range
    ("Candidate 1 is not better.", None),
    ("Candidate 1 is better. Candidate 2 is the best.", None),  # names both
    ("Both are fine.", None),
    ("unchanged " * 64, None),
])
def test_parse_choice(reply, expected):
    assert parse_choice(reply, 2) == expected


# ------------------------------------------------------------------ prompt_rewrite
def test_prompt_rewrite_api_rewritten_prompt_reaches_the_student(models, instance, seen_prompts):
    reply = f'Improved prompt: "{NEW_PROMPT}"'
    with FakeChatServer([reply]) as server:
        out = run(ApiPromptRewrite(vlm=api(server)), models, instance)
    assert seen_prompts == [NEW_PROMPT]
    assert np.array_equal(out.clip, generate_clip(models[0], dataclasses.replace(instance, prompt=NEW_PROMPT), SEED))
    (body,) = server.requests
    assert image_count(body) == 1 and instance.prompt in request_text(body)
    assert out.trace.request == {"text": request_text(body), "images": ["first_frame"]}
    assert out.trace.reply == reply and out.trace.prompt == NEW_PROMPT and out.trace.fallback is False
    assert out.trace.original_prompt == instance.prompt
    assert out.steps == 2 and set(out.timings) == {"rewrite_s", "final_s"}


def test_prompt_rewrite_unusable_reply_keeps_the_prompt_and_is_flagged(models, instance, seen_prompts):
    with FakeChatServer(["```\n\n```"]) as server:
        out = run(ApiPromptRewrite(vlm=api(server)), models, instance)
    assert out.trace.fallback is True and out.trace.prompt == instance.prompt
    assert seen_prompts[-1] == instance.prompt
    assert np.array_equal(out.clip, generate_clip(models[0], instance, SEED))  # the frozen student's video


def test_prompt_rewrite_with_the_micro_teacher(models, instance, seen_prompts, monkeypatch):
    _, teacher = models
    calls, generate = [], teacher.generate
    monkeypatch.setattr(teacher, "generate", lambda *a, **kw: calls.append((a, kw)) or generate(*a, **kw))
    # One token can never be a usable prompt: the fallback path runs whatever the teacher learnt.
    short = run(PromptRewrite(vlm=TeacherVlm(max_new_tokens=1)), models, instance)
    assert short.trace.fallback is True and seen_prompts == [instance.prompt]
    assert short.trace.vlm == {"backend": "teacher", "max_new_tokens": 1}
    (args, kwargs), = calls
    assert np.array_equal(kwargs["images"][0], instance.first_frame) and kwargs["max_new_tokens"] == 1
    # At the configured length the trace matches its own reply, and the student gets the trace's prompt.
    full = run(instantiate(component_kwargs(compose_cfg("method=prompt_rewrite"), "method")), models, instance)
    parsed = parse_prompt_reply(full.trace.reply)
    assert full.trace.fallback is (parsed is None)
    assert full.trace.prompt == (parsed or instance.prompt) == seen_prompts[-1]


def test_api_failure_after_retries_raises_with_the_trace_so_far(models, instance, seen_prompts):
    with FakeChatServer([500, 500, "never reached"]) as server, pytest.raises(MethodFailed) as err:
        run(ApiPromptRewrite(vlm=api(server)), models, instance)
    assert isinstance(err.value.cause, ChatApiError)
    assert len(server.requests) == 2 and seen_prompts == []  # 1 try + 1 retry, no generation
    assert err.value.trace.original_prompt == instance.prompt and err.value.trace.reply is None


# ------------------------------------------------------------------ videotpo
def tivibench_critic_image(clips):
    """The critic image as TiViBench's script builds it: the candidates stitched top to bottom frame by frame,
    that video's first and last frame stitched top to bottom, resized to 256x256 (PIL's default filter)."""
    stitched = [np.vstack(frames) for frames in zip(*clips)]
    both = np.vstack([stitched[0], stitched[-1]])
    return np.asarray(Image.fromarray(both).resize((256, 256)))


def decoded_image(body, k=0):
    url = [p for p in body["messages"][0]["content"] if p["type"] == "image_url"][k]["image_url"]["url"]
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"), dtype=float)


def test_videotpo_default_is_tivibench_pass_at_1_with_one_stacked_critic_image(models, instance, seen_prompts):
    """The published protocol: the last round is not critiqued, the final prompt's first seed is returned
    even when a critique prefers candidate 2, and the critic sees one 256x256 JPEG-q50 stacked image."""
    with FakeChatServer([CRITIQUE_2, "State the direction of each step.", NEW_PROMPT]) as server:
        out = run(ApiVideoTpo(vlm=api(server)), models, instance)
    assert len(server.requests) == out.trace.vlm_calls == 3 and [image_count(b) for b in server.requests] == [1, 0, 0]
    assert seen_prompts == [instance.prompt] * 2 + [NEW_PROMPT] * 2 and out.steps == 3 + 4
    seeds = candidate_seeds(SEED, 2)
    final = dataclasses.replace(instance, prompt=NEW_PROMPT)
    assert np.array_equal(out.clip, generate_clip(models[0], final, seeds[0]))
    assert out.trace.chosen == 0 and out.trace.seed == seeds[0] and out.trace.rounds[-1].critique is None
    first_round = [generate_clip(models[0], instance, s) for s in seeds]
    buf = io.BytesIO()
    Image.fromarray(tivibench_critic_image(first_round)).save(buf, format="JPEG", quality=50)
    q50 = np.asarray(Image.open(buf).convert("RGB"))
    assert np.array_equal(stacked_view(first_round), q50)
    seen = decoded_image(server.requests[0])  # re-encoded at q95 for the API: close to the q50 image
    assert seen.shape == (256, 256, 3) and np.abs(seen - q50).mean() < 2.0
    assert '"better"' not in request_text(server.requests[0])  # the critic is not asked to pick


@pytest.mark.parametrize("last_critique, chosen", [(CRITIQUE_2, 1), (CRITIQUE_1, 0)], ids=["names_2", "names_1"])
def test_videotpo_api_rounds_and_the_named_candidate_is_returned(models, instance, seen_prompts, last_critique, chosen):
    script = [CRITIQUE_2, "State the direction of each step.", f"New prompt: {NEW_PROMPT}", last_critique]
    with FakeChatServer(script) as server:
        out = run(ApiVideoTpo(vlm=api(server), **VLM_PICK), models, instance)
    assert seen_prompts == [instance.prompt] * 2 + [NEW_PROMPT] * 2
    seeds = candidate_seeds(SEED, 2)
    expected = generate_clip(models[0], dataclasses.replace(instance, prompt=NEW_PROMPT), seeds[chosen])
    assert np.array_equal(out.clip, expected)
    assert out.trace.chosen == chosen and out.trace.seed == seeds[chosen]
    first, last = out.trace.rounds
    assert [image_count(b) for b in server.requests] == [4, 0, 0, 4]
    assert first.critique.request == request_text(server.requests[0])
    assert first.critique.reply == CRITIQUE_2 and first.critique.chosen == 1
    assert first.edit.reply == "State the direction of each step."
    assert CRITIQUE_2 in first.edit.request and "State the direction" in first.rewrite.request
    assert first.rewrite.prompt == NEW_PROMPT and first.rewrite.fallback is False
    assert last.prompt == out.trace.final_prompt == NEW_PROMPT and NEW_PROMPT in request_text(server.requests[3])
    assert last.edit is None and last.rewrite is None and last.critique.choice_fallback is False
    assert first.seeds == last.seeds == seeds
    assert out.steps == 4 + 4 and out.trace.vlm_calls == 4 and out.trace.generations == 4
    assert set(out.timings) == {"sampling_s", "critique_s", "edit_s", "rewrite_s"} and min(out.timings.values()) > 0


def test_videotpo_unparsable_critique_and_rewrite_fall_back_flagged(models, instance, seen_prompts):
    with FakeChatServer(["Both look similar.", "Be clearer.", "assistant " * 20, "Hard to say."]) as server:
        out = run(ApiVideoTpo(vlm=api(server), **VLM_PICK), models, instance)
    first, last = out.trace.rounds
    assert first.critique.choice_fallback is True and first.critique.chosen == 0
    assert first.rewrite.fallback is True and out.trace.final_prompt == instance.prompt
    assert last.critique.choice_fallback is True and out.trace.chosen == 0
    assert seen_prompts == [instance.prompt] * 4
    assert np.array_equal(out.clip, generate_clip(models[0], instance, SEED))  # candidate 1 = the frozen video


@pytest.mark.parametrize("rounds, width", [(1, 3), (3, 1)])
def test_rounds_and_width_set_the_cost(models, instance, seen_prompts, rounds, width):
    with FakeChatServer(default=f"{NEW_PROMPT} {{\"better\": {width}}}") as server:
        out = run(ApiVideoTpo(vlm=api(server), rounds=rounds, width=width, same_seeds_each_round=False, **VLM_PICK),
                  models, instance)
    calls = rounds + 2 * (rounds - 1)
    assert len(server.requests) == out.trace.vlm_calls == calls
    assert len(seen_prompts) == out.trace.generations == rounds * width and out.steps == calls + rounds * width
    assert [image_count(b) for b in server.requests if image_count(b)] == [2 * width] * rounds
    assert out.trace.chosen == width - 1
    seeds = [r.seeds for r in out.trace.rounds]
    assert seeds[0] == candidate_seeds(SEED, width)
    assert all(s == candidate_seeds(derive_seed(SEED, "videotpo_round", r), width) for r, s in enumerate(seeds) if r)
    assert len({s for round_seeds in seeds for s in round_seeds}) == rounds * width  # fresh seeds each round


def test_videotpo_api_failure_mid_round_raises_with_the_rounds_so_far(models, instance):
    with FakeChatServer([CRITIQUE_2, 503, 503]) as server, pytest.raises(MethodFailed) as err:
        run(ApiVideoTpo(vlm=api(server)), models, instance)
    assert isinstance(err.value.cause, ChatApiError)
    (first,) = err.value.trace.rounds
    assert first.critique.reply == CRITIQUE_2 and first.edit.reply is None and first.rewrite is None
    assert len(server.requests) == 3


def test_videotpo_with_the_micro_teacher(models, instance, seen_prompts):
    out = run(VideoTpo(vlm=TeacherVlm(max_new_tokens=1)), models, instance)
    first, last = out.trace.rounds
    assert first.rewrite.fallback is True and out.trace.final_prompt == instance.prompt
    assert first.critique.images == ["stacked_first_then_last_frames"] and last.critique is None
    assert seen_prompts == [instance.prompt] * 4 and out.steps == 3 + 4
    assert np.array_equal(out.clip, generate_clip(models[0], instance, SEED))  # the first seed


def test_videotpo_vlm_pick_with_the_micro_teacher(models, instance, seen_prompts):
    out = run(VideoTpo(vlm=TeacherVlm(max_new_tokens=1), **VLM_PICK), models, instance)
    first, last = out.trace.rounds
    for step in (first, last):  # the choice is whatever the one-token critique names, or the flagged default
        choice = parse_choice(step.critique.reply, 2)
        assert step.critique.chosen == (0 if choice is None else choice)
        assert step.critique.choice_fallback is (choice is None)
    assert seen_prompts == [instance.prompt] * 4 and out.steps == 8
    expected = generate_clip(models[0], instance, candidate_seeds(SEED, 2)[out.trace.chosen])
    assert np.array_equal(out.clip, expected)


# ------------------------------------------------------------------ configs
@pytest.mark.parametrize("name, cls, backend, teacher", [
    ("prompt_rewrite", PromptRewrite, TeacherVlm, True), ("prompt_rewrite_api", ApiPromptRewrite, ApiVlm, False),
    ("videotpo", VideoTpo, TeacherVlm, True), ("videotpo_api", ApiVideoTpo, ApiVlm, False),
    ("videotpo_vlm_pick", VideoTpo, TeacherVlm, True),
])
def test_configs_build_the_method_and_tell_the_runner_about_the_teacher(name, cls, backend, teacher):
    cfg = compose_cfg(f"method={name}")
    method = instantiate(component_kwargs(cfg, "method"), _convert_="all")
    assert type(method) is cls and type(method.vlm) is backend
    assert method_needs_teacher(cfg) is teacher
    if not teacher:
        assert method.vlm.describe()["model"] == "gpt-4o"
    if name.startswith("videotpo"):  # TiViBench's protocol unless the name says otherwise
        published = ("first_seed", "stacked")
        assert (method.selection, method.critic_view) == (("vlm_pick", "frames") if "pick" in name else published)


def test_a_backend_the_runner_would_not_prepare_for_is_refused():
    with pytest.raises(UserError, match="ApiVideoTpo"):
        VideoTpo(vlm=ApiVlm(model="m", api_key_env=None))
    with pytest.raises(UserError, match="PromptRewrite"):
        ApiPromptRewrite(vlm=TeacherVlm())


# ------------------------------------------------------------------ through the runner
def test_runner_records_api_videotpo_and_an_api_failure_as_an_error(tmp_path):
    overrides = [f"output_root={tmp_path}", "progress=false", "limit=2", "student.device=cpu",
                 "method=videotpo_api", "method.vlm.api_key_env=null", "method.vlm.max_retries=0"]
    # Instance 1 gets a full exchange; instance 2's first critique fails (the script is empty, no default).
    with FakeChatServer([CRITIQUE_2, "Name each step.", NEW_PROMPT]) as server:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="config", overrides=[*overrides, f"method.vlm.base_url={server.base_url}"],
                          return_hydra_config=True)
        choices = dict(cfg.hydra.runtime.choices)
        with open_dict(cfg):
            del cfg["hydra"]
        runner = Runner(cfg, choices)
        records = runner.execute(NullSink()).latest_records()
    assert runner.teacher is None  # the API variant never loads the teacher
    ok, failed = (records[k] for k in sorted(records))
    assert ok["status"] == "ok" and ok["method"] == "videotpo_api" and ok["steps"] == 7
    assert ok["trace"]["final_prompt"] == NEW_PROMPT and ok["trace"]["chosen"] == 0
    assert failed["status"] == "error" and failed["error_stage"] == "generate" and "HTTP 500" in failed["error"]
    assert failed["trace"]["rounds"][0]["critique"]["request"] and failed["trace"]["rounds"][0]["critique"]["reply"] is None
