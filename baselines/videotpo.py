"""VideoTPO (TiViBench, arXiv 2511.13704): test-time preference optimisation in prompt space.

Each of ``rounds`` rounds generates ``width`` candidate videos from the current prompt; the VLM
critiques them against the task from their first and last frames (the "textual loss") and names the
better one. Every round but the last then asks for edit instructions (the "textual gradient") and a
rewritten prompt (the update). The instruction texts are ours.

Final video: the candidate the VLM preferred in the last round. As in TiViBench's public script, the
last round generates from the final prompt and is not followed by another rewrite, so the cost is
``rounds * width`` generations (2 x 2 = 4x base, in line with the 3-4x the paper reports); the
selection reuses the critique the method already pays for and never reads the benchmark's scorer.
An unparsable preference picks candidate 1 and is flagged (``choice_fallback``); an unusable
rewrite keeps the current prompt and is flagged (``fallback``).

Seeds: candidate j uses the seeds of ``baselines.sampling.candidate_seeds`` (candidate 1 = the
instance seed, so round 0's first video is the frozen student's). With ``same_seeds_each_round``
(the default, as TiViBench's script reuses its two seeds every iteration) only the prompt changes
between rounds; otherwise round r > 0 draws fresh seeds from (instance seed, r).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from baselines.prompt_backends import ApiVlm, PromptVlm, TeacherVlm, check_backend, trace_on_error
from baselines.prompt_parsing import parse_choice, parse_prompt_reply
from baselines.sampling import candidate_seeds
from harness.method import Method, MethodContext, derive_seed, generate_clip
from harness.types import Instance, MethodOutput

CRITIQUE = (
    "A video generation model was asked to carry out this task:\n{task}\n\n"
    "It was given this prompt:\n{prompt}\n\n"
    "The images show {count} candidate videos, two images each: the first frame, then the last frame "
    "(candidate 1 first). Analyse the strengths and weaknesses of each candidate step by step against "
    "the task: is the final state right, and do the rules of the task hold? All of them may be wrong; "
    "judge strictly. End with one line of JSON naming the best candidate, e.g. {{\"better\": 1}}."
)
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

    def __init__(self, *, vlm: PromptVlm | None = None, rounds: int = 2, width: int = 2, max_words: int = 200,
                 min_words: int = 3, same_seeds_each_round: bool = True):
        if rounds < 1 or width < 1:
            raise ValueError(f"videotpo needs rounds >= 1 and width >= 1, got rounds={rounds}, width={width}")
        if max_words < 1 or min_words < 1:
            raise ValueError(f"max_words and min_words must be >= 1, got {max_words}, {min_words}")
        self.vlm = vlm if vlm is not None else TeacherVlm()
        check_backend(self, self.vlm)
        self.rounds, self.width = rounds, width
        self.max_words, self.min_words = max_words, min_words
        self.same_seeds_each_round = same_seeds_each_round

    def round_seeds(self, seed: int, round_index: int) -> list[int]:
        if self.same_seeds_each_round or round_index == 0:
            return candidate_seeds(seed, self.width)
        return candidate_seeds(derive_seed(seed, "videotpo_round", round_index), self.width)

    def run(self, instance: Instance, ctx: MethodContext) -> MethodOutput:
        timings = dict.fromkeys(("sampling_s", "critique_s", "edit_s", "rewrite_s"), 0.0)
        rounds: list[dict[str, Any]] = []
        trace: dict[str, Any] = {"vlm": self.vlm.describe(), "original_prompt": instance.prompt,
                                 "rounds": rounds, "selection": "preferred candidate of the last round's critique"}
        prompt = instance.prompt
        with trace_on_error(trace):
            for r in range(self.rounds):
                step: dict[str, Any] = {"round": r, "prompt": prompt, "seeds": self.round_seeds(ctx.seed, r)}
                rounds.append(step)
                with _timed(timings, "sampling_s"):
                    task = dataclasses.replace(instance, prompt=prompt)
                    clips = [generate_clip(ctx.student, task, s) for s in step["seeds"]]
                with _timed(timings, "critique_s"):
                    self._critique(ctx, step, instance.prompt, clips)
                if r == self.rounds - 1:
                    break
                with _timed(timings, "edit_s"):
                    self._edit(ctx, step, instance.prompt)
                with _timed(timings, "rewrite_s"):
                    self._rewrite(ctx, step, instance.prompt)
                prompt = step["rewrite"]["prompt"]
        chosen = rounds[-1]["critique"]["chosen"]
        calls = sum(key in step for step in rounds for key in ("critique", "edit", "rewrite"))
        generations = self.rounds * self.width
        trace.update(final_prompt=prompt, chosen=chosen, seed=rounds[-1]["seeds"][chosen], vlm_calls=calls,
                     generations=generations)
        return MethodOutput(clip=clips[chosen], trace=trace, timings=timings, steps=calls + generations)

    # Each exchange enters the round's trace before the VLM is asked, so a failure leaves the request.
    def _critique(self, ctx: MethodContext, step: dict[str, Any], task: str, clips: list[np.ndarray]) -> None:
        request = CRITIQUE.format(task=task, prompt=step["prompt"], count=len(clips))
        images = [frame for clip in clips for frame in (clip[0], clip[-1])]
        names = [f"candidate{j + 1}_{end}" for j in range(len(clips)) for end in ("first", "last")]
        out = step["critique"] = {"request": request, "images": names}
        out["reply"] = self.vlm.ask(ctx, request, images)
        choice = parse_choice(out["reply"], len(clips)) if len(clips) > 1 else 0
        out.update(chosen=0 if choice is None else choice, choice_fallback=choice is None)

    def _edit(self, ctx: MethodContext, step: dict[str, Any], task: str) -> None:
        request = EDIT.format(task=task, prompt=step["prompt"], critique=step["critique"]["reply"])
        out = step["edit"] = {"request": request}
        out["reply"] = self.vlm.ask(ctx, request)

    def _rewrite(self, ctx: MethodContext, step: dict[str, Any], task: str) -> None:
        request = REWRITE.format(task=task, prompt=step["prompt"], edit=step["edit"]["reply"], max_words=self.max_words)
        out = step["rewrite"] = {"request": request}
        out["reply"] = self.vlm.ask(ctx, request)
        parsed = parse_prompt_reply(out["reply"], min_words=self.min_words)
        out.update(prompt=step["prompt"] if parsed is None else parsed, fallback=parsed is None)


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
                 same_seeds_each_round: bool = True):
        super().__init__(vlm=vlm, rounds=rounds, width=width, max_words=max_words, min_words=min_words,
                         same_seeds_each_round=same_seeds_each_round)
