"""Prompt rewriting ("PE", the paper's VLM-as-Solver baseline): the VLM reads the task prompt and the
first frame, writes one detailed step-by-step prompt, and the student generates once from it with the
instance seed. An unusable reply keeps the original prompt (``fallback: true`` in the trace), so the
video is then exactly the frozen student's. The instruction text is ours: the paper publishes none.
"""

from __future__ import annotations

import dataclasses
import time

from baselines.prompt_backends import ApiVlm, PromptVlm, TeacherVlm, check_backend, trace_on_error
from baselines.prompt_parsing import parse_prompt_reply
from baselines.traces import PromptRewriteTrace
from harness.method import Method, MethodContext, generate_clip
from harness.types import Instance, MethodOutput

INSTRUCTION = (
    "You write prompts for a video generation model. {source} The video must carry out this task:\n"
    "{task}\n\n"
    "Rewrite the task as one detailed prompt for the video model: describe the starting scene, then "
    "each movement or change in order, what must stay unchanged, and the final state. Keep every rule "
    "of the task. Use at most {max_words} words. Reply with the prompt only."
)
SOURCE_I2V = "The video starts from the image shown."
SOURCE_T2V = "The video is generated from text alone."


def rewrite_request(task: str, *, has_image: bool, max_words: int) -> str:
    return INSTRUCTION.format(source=SOURCE_I2V if has_image else SOURCE_T2V, task=task, max_words=max_words)


class PromptRewrite(Method):
    """One VLM rewrite of the prompt, then one generation. The VLM is the run's teacher."""

    needs_teacher = True
    trace_type = PromptRewriteTrace

    def __init__(self, *, vlm: PromptVlm | None = None, max_words: int = 200, min_words: int = 3):
        if max_words < 1 or min_words < 1:
            raise ValueError(f"max_words and min_words must be >= 1, got {max_words}, {min_words}")
        self.vlm = vlm if vlm is not None else TeacherVlm()
        check_backend(self, self.vlm)
        self.max_words, self.min_words = max_words, min_words

    def run(self, instance: Instance, ctx: MethodContext) -> MethodOutput:
        start = time.perf_counter()
        images = [instance.first_frame] if instance.first_frame is not None else []
        request = rewrite_request(instance.prompt, has_image=bool(images), max_words=self.max_words)
        trace = PromptRewriteTrace(vlm=self.vlm.describe(), original_prompt=instance.prompt,
                                   request={"text": request, "images": ["first_frame"] * len(images)})
        with trace_on_error(trace):
            trace.reply = self.vlm.ask(ctx, request, images)
        rewritten = time.perf_counter()
        parsed = parse_prompt_reply(trace.reply, min_words=self.min_words)
        prompt = trace.prompt = parsed if parsed is not None else instance.prompt
        trace.fallback = parsed is None
        clip = generate_clip(ctx.student, dataclasses.replace(instance, prompt=prompt), ctx.seed)
        timings = {"rewrite_s": rewritten - start, "final_s": time.perf_counter() - rewritten}
        return MethodOutput(clip=clip, trace=trace, timings=timings, steps=2)


class ApiPromptRewrite(PromptRewrite):
    """``PromptRewrite`` with a chat model behind an OpenAI-compatible API as the VLM (no teacher loaded)."""

    needs_teacher = False

    def __init__(self, *, vlm: ApiVlm, max_words: int = 200, min_words: int = 3):
        super().__init__(vlm=vlm, max_words=max_words, min_words=min_words)
