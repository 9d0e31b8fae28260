"""VideoTPO (TiViBench, arXiv 2511.13704): test-time preference optimisation in prompt space.

Each of ``rounds`` rounds generates ``width`` candidate videos from the current prompt. Every round
but the last then has the VLM critique them against the task (the "textual loss"), write edit
instructions (the "textual gradient") and rewrite the prompt (the update). The instruction texts
are ours.

Two selections (``selection``):
- ``first_seed`` (default, as TiViBench's public script ``VideoTPO/videotpo_wan.py`` and its Pass@1
  numbers): the last round generates from the final prompt and nothing more is asked; the video is
  the final prompt's candidate 1 (the first seed).
- ``vlm_pick`` (ours, labelled ``videotpo_vlm_pick``): the last round is critiqued too, each critique
  ends by naming the better candidate, and the named one is returned. An unparsable preference picks
  candidate 1 and is flagged (``choice_fallback``).

What the critic sees (``critic_view``):
- ``stacked`` (default, as the script): one image, the candidates' first frames then their last
  frames stacked top to bottom (candidate 1 first), squeezed to 256x256 (bicubic) and passed through
  JPEG quality 50; the script stacks the videos through an MJPG file first, which is not repeated.
- ``frames``: the first and last frame of every candidate at full size, as separate images.

Cost: ``rounds * width`` generations either way (the script also generates the unused second
candidate of the last round); VLM calls ``3 * (rounds - 1)``, plus ``rounds`` more critiques with
``vlm_pick``. An unusable rewrite keeps the current prompt and is flagged (``fallback``). The
benchmark's scorer is never read.

Seeds: candidate j uses the seeds of ``baselines.sampling.candidate_seeds`` (candidate 1 = the
instance seed, so round 0's first video is the frozen student's). With ``same_seeds_each_round``
(the default, as TiViBench's script reuses its two seeds every iteration) only the prompt changes
between rounds; otherwise round r > 0 draws fresh seeds from (instance seed, r).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import time
from collections.abc import Iterator

import numpy as np
from PIL import Image

from baselines.prompt_backends import ApiVlm, PromptVlm, TeacherVlm, check_backend, trace_on_error
from baselines.prompt_parsing import parse_choice, parse_prompt_reply
from baselines.sampling import candidate_seeds
from baselines.traces import Critique, Exchange, Rewrite, TpoRound, VideoTpoTrace
from harness.method import Method, MethodContext, generate_clip
from harness.seeding import derive_seed
from harness.types import Instance, MethodOutput, UserError

SELECTIONS = ("first_seed", "vlm_pick")
CRITIC_VIEWS = ("stacked", "frames")
STACKED_SIZE = 256  # TiViBench's critic image: 256 x 256, JPEG quality 50
STACKED_JPEG_QUALITY = 50

CRITIQUE = (
    "A video generation model was asked to carry out this task:\n{task}\n\n"
    "It was given this prompt:\n{prompt}\n\n"
    "{layout} Analyse the strengths and weaknesses of each candidate step by step against "
    "the task: is the final state right, and do the rules of the task hold? All of them may be wrong; "
    "judge strictly.{ending}"
)
LAYOUT = {
    "stacked": ("The image stacks {count} candidate videos from top to bottom: the first frame of each "
                "candidate (candidate 1 first), then the last frame of each."),
    "frames": ("The images show {count} candidate videos, two images each: the first frame, then the last "
               "frame (candidate 1 first)."),
}
NAME_THE_BEST = " End with one line of JSON naming the best candidate, e.g. {\"better\": 1}."
EDIT = (
    "A video generation model was asked to carry out this task:\n{task}\n\n"
    "It was given this prompt:\n{prompt}\n\n"
    "A critique of the videos it made:\n{critique}\n\n"
    "Write short instructions for how to change the prompt so that the model carries out the task "
    "correctly: what to add, remove or state more explicitly. Reply with the instructions only."
)
REWRITE = (
    "Apply these instructions to the prompt of a video generation model.\n\n"
    "Task:\n{task}\n\nCurrent prompt:\n{prompt}\n\nInstructions:\n{edit}\n\n"
    "Keep every rule of the task. Use at most {max_words} words. Reply with the new prompt only."
)


class VideoTpo(Method):
    """Rounds of generate-critique-edit-rewrite; the VLM is the run's teacher."""

    needs_teacher = True
    trace_type = VideoTpoTrace

    def __init__(self, *, vlm: PromptVlm | None = None, rounds: int = 2, width: int = 2, max_words: int = 200,
                 min_words: int = 3, same_seeds_each_round: bool = True, selection: str = "first_seed",
                 critic_view: str = "stacked"):
        if rounds < 1 or width < 1:
            raise ValueError(f"videotpo needs rounds >= 1 and width >= 1, got rounds={rounds}, width={width}")
        if max_words < 1 or min_words < 1:
            raise ValueError(f"max_words and min_words must be >= 1, got {max_words}, {min_words}")
        if selection not in SELECTIONS or critic_view not in CRITIC_VIEWS:
            raise UserError(f"videotpo: selection must be one of {SELECTIONS} (got {selection!r}) and critic_view "
                            f"one of {CRITIC_VIEWS} (got {critic_view!r}); see conf/method/videotpo*.yaml")
        self.vlm = vlm if vlm is not None else TeacherVlm()
        check_backend(self, self.vlm)
        self.rounds, self.width = rounds, width
        self.max_words, self.min_words = max_words, min_words
        self.same_seeds_each_round = same_seeds_each_round
        self.selection, self.critic_view = selection, critic_view

    def round_seeds(self, seed: int, round_index: int) -> list[int]:
        if self.same_seeds_each_round or round_index == 0:
            return candidate_seeds(seed, self.width)
        return candidate_seeds(derive_seed(seed, "videotpo_round", round_index), self.width)

    def run(self, instance: Instance, ctx: MethodContext) -> MethodOutput:
        timings = dict.fromkeys(("sampling_s", "critique_s", "edit_s", "rewrite_s"), 0.0)
        picks = self.selection == "vlm_pick"
        trace = VideoTpoTrace(
            vlm=self.vlm.describe(), original_prompt=instance.prompt,
            selection="preferred candidate of the last round's critique" if picks
            else "the final prompt's first seed (TiViBench's Pass@1)",
            critic_view=self.critic_view,
        )
        rounds = trace.rounds
        prompt = instance.prompt
        with trace_on_error(trace):
            for r in range(self.rounds):
                step = TpoRound(round=r, prompt=prompt, seeds=self.round_seeds(ctx.seed, r))
                rounds.append(step)
                with _timed(timings, "sampling_s"):
                    task = dataclasses.replace(instance, prompt=prompt)
                    clips = [generate_clip(ctx.student, task, s) for s in step.seeds]
                last = r == self.rounds - 1
                if last and not picks:
                    break
                with _timed(timings, "critique_s"):
                    self._critique(ctx, step, instance.prompt, clips)
                if last:
                    break
                with _timed(timings, "edit_s"):
                    self._edit(ctx, step, instance.prompt)
                with _timed(timings, "rewrite_s"):
                    self._rewrite(ctx, step, instance.prompt)
                prompt = step.rewrite.prompt
        chosen = rounds[-1].critique.chosen if picks else 0
        calls = sum(step.exchanges() for step in rounds)
        generations = self.rounds * self.width
        trace.final_prompt, trace.chosen, trace.seed = prompt, chosen, rounds[-1].seeds[chosen]
        trace.vlm_calls, trace.generations = calls, generations
        return MethodOutput(clip=clips[chosen], trace=trace, timings=timings, steps=calls + generations)

    # Each exchange enters the round's trace before the VLM is asked, so a failure leaves the request.
    def _critique(self, ctx: MethodContext, step: TpoRound, task: str, clips: list[np.ndarray]) -> None:
        picks = self.selection == "vlm_pick"
        layout = LAYOUT[self.critic_view].format(count=len(clips))
        request = CRITIQUE.format(task=task, prompt=step.prompt, layout=layout, ending=NAME_THE_BEST if picks else "")
        if self.critic_view == "stacked":
            images, names = [stacked_view(clips)], ["stacked_first_then_last_frames"]
        else:
            images = [frame for clip in clips for frame in (clip[0], clip[-1])]
            names = [f"candidate{j + 1}_{end}" for j in range(len(clips)) for end in ("first", "last")]
        out = step.critique = Critique(request=request, images=names)
        out.reply = self.vlm.ask(ctx, request, images)
        if picks:
            choice = parse_choice(out.reply, len(clips)) if len(clips) > 1 else 0
            out.chosen, out.choice_fallback = 0 if choice is None else choice, choice is None

    def _edit(self, ctx: MethodContext, step: TpoRound, task: str) -> None:
        request = EDIT.format(task=task, prompt=step.prompt, critique=step.critique.reply)
        out = step.edit = Exchange(request=request)
        out.reply = self.vlm.ask(ctx, request)

    def _rewrite(self, ctx: MethodContext, step: TpoRound, task: str) -> None:
        request = REWRITE.format(task=task, prompt=step.prompt, edit=step.edit.reply, max_words=self.max_words)
        out = step.rewrite = Rewrite(request=request)
        out.reply = self.vlm.ask(ctx, request)
        parsed = parse_prompt_reply(out.reply, min_words=self.min_words)
        out.prompt, out.fallback = step.prompt if parsed is None else parsed, parsed is None


def stacked_view(clips: list[np.ndarray]) -> np.ndarray:
    """TiViBench's critic image: first frames then last frames, stacked vertically, 256x256, JPEG q50."""
    column = np.concatenate([clip[0] for clip in clips] + [clip[-1] for clip in clips], axis=0)
    image = Image.fromarray(column).resize((STACKED_SIZE, STACKED_SIZE), Image.Resampling.BICUBIC)  # PIL's default
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=STACKED_JPEG_QUALITY)
    with Image.open(buf) as decoded:  # what the critic sees is the compressed image, whatever the backend
        return np.array(decoded.convert("RGB"))


@contextlib.contextmanager
def _timed(timings: dict[str, float], key: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[key] += time.perf_counter() - start


class ApiVideoTpo(VideoTpo):
    """``VideoTpo`` with a chat model behind an OpenAI-compatible API as the VLM (no teacher loaded)."""

    needs_teacher = False

    def __init__(self, *, vlm: ApiVlm, rounds: int = 2, width: int = 2, max_words: int = 200, min_words: int = 3,
                 same_seeds_each_round: bool = True, selection: str = "first_seed", critic_view: str = "stacked"):
        super().__init__(vlm=vlm, rounds=rounds, width=width, max_words=max_words, min_words=min_words,
                         same_seeds_each_round=same_seeds_each_round, selection=selection, critic_view=critic_view)
