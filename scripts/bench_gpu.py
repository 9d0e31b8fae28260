"""GPU cost of vlmteach at the paper's shapes, with random-weight models of the real sizes.

    python scripts/bench_gpu.py [--steps 16] [--out results/perf]     # one GPU (the issue's targets: one H200)
    python scripts/bench_gpu.py --tiny --device cpu                     # tiny configs: checks the script runs

Shapes (the paper's): 89 frames at 512x512 (latent [1, 48, 23, 32, 32], 5,888 DiT tokens), a
Wan2.2-TI2V-5B DiT in bf16 with an fp32 rank-16 LoRA (attention + FFN) and gradient checkpointing,
the 5B Wan VAE (fp32, final decode only), a full-size TAEHV light decoder (bf16), a Qwen3-VL-4B
teacher in bf16 (SDPA) seeing 24 frames at 448x448, 3 questions (goal + 2 process), 4 DMD steps for
the final sample. Weights are random: speed and memory do not depend on them. The text encoder is a
one-layer stand-in with UMT5-XXL's width (the prompt is encoded once per instance, off the loop), and
the tokenizers are the micro world's word-level ones; the teacher writes its questions with
``max_new_tokens`` 96 and no retry (a real teacher's JSON reply is about that long; a random one never
stops early and never parses, so the fallback questions are used).

Paths, each on one instance (a short warm-up instance first; early stop off, so every instance
takes exactly ``--steps`` updates):
- ``optimised``: the teacher runs the system + video prefix once per loss, the questions after it in
  the same row under a block mask (``teacher.shared_prefix``);
- ``compiled``: the same, with every DiT block compiled (``student.compile``: diffusers' regional
  ``torch.compile`` of the repeated Wan block, LoRA inside the graph);
- ``compiled_partial_ckpt``: compiled, and the first ``--uncheckpointed`` DiT blocks left out of gradient
  checkpointing (``student.uncheckpointed_blocks``: memory for speed);
- ``compiled_fp8``: ``compiled_partial_ckpt`` with the frozen DiT weights' products in FP8 (``student.fp8``:
  e4m3, row-wise scales, forward and input gradient; the LoRA stays fp32);
- ``..._static``: any path with question synthesis on a static KV cache (``teacher.synthesis_cache_len``), its
  decoding compiled by ``generate``;
- ``..._tcompile``: the teacher's decoder layers compiled (``teacher.compile``);
- ``..._vae16``: the final decode with the Wan VAE in bf16 (``student.vae_dtype``);
- ``..._lora16``: the LoRA's products in bf16, its weights fp32 (``student.lora.compute_dtype``);
- ``..._vsplit``: the teacher's vision attention as one SDPA call per frame pair, transformers' own path
  (``teacher.packed_vision_attention=false``); without it, one call for all pairs, as the configs do;
- ``naive``: the batched teacher (every question a full row, video included) on the eager DiT: the
  straightforward baseline.
A path written ``NAME:N`` leaves ``N`` blocks out of checkpointing instead of ``--uncheckpointed``.
Paths run in the order given (compilation and the FP8 swap cannot be undone in a process, so compiled
paths come after eager ones and FP8 paths last).
Writes ``bench_gpu_<device>.json`` and ``.md`` to ``--out``, each path's speed-up over ``naive`` (when it ran) and,
on an H200, its ratio to issue 35's arithmetic bound. With ``--profile N``: over N more steps of the last path,
where the GPU's time goes (kinds of kernel, and idle) and the operators that take the most of it,
``profile_<device>.txt``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from diffusers import AutoencoderKLWan, WanTransformer3DModel  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import (  # noqa: E402
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
    T5Config,
    T5EncoderModel,
)

from benchmarks.gpu_timeline import (  # noqa: E402
    gaps_markdown,
    gpu_timeline,
    idle_gaps,
    timeline_markdown,
)
from benchmarks.micro import vocabulary as student_words  # noqa: E402
from benchmarks.perf_bound import (  # noqa: E402
    BOUND_S_PER_INSTANCE,
    BOUND_S_PER_STEP,
    BOUND_STEPS,
    on_bound_gpu,
)
from harness.method import MethodContext  # noqa: E402
from harness.students.fp8 import fp8_base_layers  # noqa: E402
from harness.students.lora import set_compute_dtype  # noqa: E402
from harness.students.taehv import TAEHVDecoder  # noqa: E402
from harness.students.wan import WanStudent, checkpoint_blocks  # noqa: E402
from harness.teachers.packed_attention import use_packed_vision_attention  # noqa: E402
from harness.teachers.preprocess import VisionSpec  # noqa: E402
from harness.teachers.qwen_vl import QwenVLTeacher  # noqa: E402
from harness.teachers.shared_prefix import compile_decoder_layers  # noqa: E402
from harness.types import Instance  # noqa: E402
from harness.vlmteach import VlmTeach  # noqa: E402
from harness.vlmteach.frames import select_frames  # noqa: E402
from harness.vlmteach.loss import multi_vqa_loss, weigh_questions  # noqa: E402
from lab.micro import weights_student, weights_teacher  # noqa: E402

PROMPT = "Move the red ball to the green square without touching the walls."
# The warm-up's prompt differs in length from the timed one, as instances of a benchmark do: a path
# that compiles per prompt length pays its recompilation inside the timed instance.
WARMUP_PROMPT = "Move the small red ball to the green square in as few moves as it can, never touching a wall."
SYNTHESIS_CACHE_LEN = 4096  # the ``static`` paths' teacher.synthesis_cache_len
TARGETS = {"s_per_step": 0.7, "s_per_instance": 15.0, "peak_gib": 75.0}
GIB = 2**30
LORA = dict(rank=16, scale=1.0, target_modules=["to_q", "to_k", "to_v", "to_out.0", "ffn.net.0.proj", "ffn.net.2"])

# Wan2.2-TI2V-5B's transformer and VAE configs (Wan-AI/Wan2.2-TI2V-5B-Diffusers).
WAN_5B = dict(patch_size=(1, 2, 2), num_attention_heads=24, attention_head_dim=128, in_channels=48, out_channels=48,
              text_dim=4096, freq_dim=256, ffn_dim=14336, num_layers=30, cross_attn_norm=True,
              qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024)
VAE_5B = dict(base_dim=160, decoder_base_dim=256, z_dim=48, is_residual=True, in_channels=12, out_channels=12,
              patch_size=2, scale_factor_spatial=16, scale_factor_temporal=4, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
              temperal_downsample=[False, True, True])
WAN_TINY = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=8, in_channels=48, out_channels=48,
                text_dim=16, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
                qk_norm="rms_norm_across_heads")
VAE_TINY = dict(base_dim=3, z_dim=48, in_channels=12, out_channels=12, is_residual=True, patch_size=2,
                dim_mult=[1, 1, 1, 1], num_res_blocks=1, scale_factor_spatial=16, scale_factor_temporal=4,
                temperal_downsample=[False, True, True])
# Qwen3-VL-4B-Instruct's config.json (hyper-parameters only).
QWEN3_VL_4B_TEXT = dict(vocab_size=151936, hidden_size=2560, intermediate_size=9728, num_hidden_layers=36,
                        num_attention_heads=32, num_key_value_heads=8, head_dim=128, rms_norm_eps=1e-6,
                        max_position_embeddings=262144, tie_word_embeddings=True,
                        rope_parameters={"rope_type": "default", "rope_theta": 5000000.0, "mrope_section": [24, 20, 20],
                                         "mrope_interleaved": True})
QWEN3_VL_4B_VISION = dict(depth=24, hidden_size=1024, intermediate_size=4096, num_heads=16, patch_size=16,
                          spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=2560,
                          num_position_embeddings=2304, deepstack_visual_indexes=[5, 11, 17],
                          hidden_act="gelu_pytorch_tanh")
QWEN3_VL_TINY_TEXT = dict(vocab_size=512, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                          rope_parameters={"rope_type": "default", "mrope_section": [2, 1, 1],
                                           "mrope_interleaved": True})
QWEN3_VL_TINY_VISION = dict(depth=2, hidden_size=32, intermediate_size=32, num_heads=4, patch_size=16,
                            spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=32, num_position_embeddings=16,
                            deepstack_visual_indexes=[1], hidden_act="gelu_pytorch_tanh")


def build_student(tiny: bool, device: torch.device, workdir: Path) -> WanStudent:
    torch.manual_seed(0)
    cfg = WAN_TINY if tiny else WAN_5B
    stats = torch.Generator().manual_seed(1)  # non-trivial latent mean/std: the raw convention uses them
    mean, std = (0.2 * torch.randn(48, generator=stats)).tolist(), (torch.rand(48, generator=stats) + 0.4).tolist()
    with torch.device(device):
        transformer = WanTransformer3DModel(**cfg).to(torch.bfloat16)
        _keep_fp32(transformer, WanTransformer3DModel._keep_in_fp32_modules)
        vae = AutoencoderKLWan(**(VAE_TINY if tiny else VAE_5B), latents_mean=mean, latents_std=std)
    tokenizer = weights_student.build_tokenizer(student_words())
    text_encoder = T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=cfg["text_dim"], d_kv=8, d_ff=64,
                                           num_layers=1, num_heads=4, dropout_rate=0.0))
    # A full-size TAEHV decoder (taew2_2 layout) with random weights, loaded through the config route.
    taehv = workdir / "taehv_random.safetensors"
    widths = (8, 8, 4, 4) if tiny else (256, 128, 64, 64)
    save_file(TAEHVDecoder(latent_channels=48, patch_size=2, channels=widths).state_dict(), str(taehv))
    return WanStudent(
        transformer=transformer, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, device=str(device),
        sampler="dmd", dmd_timesteps=[1000, 750, 500, 250], num_steps=4, guidance_scale=1.0, lora=LORA,
        gradient_checkpointing=True, offload_text_encoder=False, max_text_len=16 if tiny else 512,
        light_decoder={"kind": "taehv", "path": str(taehv), "latent_convention": "raw", "dtype": "bfloat16"},
    )


def build_teacher(tiny: bool, device: torch.device, frames: int, size: int) -> QwenVLTeacher:
    torch.manual_seed(0)
    tokenizer = weights_teacher.build_tokenizer()
    text = dict(QWEN3_VL_TINY_TEXT if tiny else QWEN3_VL_4B_TEXT, pad_token_id=weights_teacher.PAD_ID,
                bos_token_id=weights_teacher.IM_START_ID, eos_token_id=weights_teacher.IM_END_ID)
    config = Qwen3VLConfig(
        text_config=text, vision_config=QWEN3_VL_TINY_VISION if tiny else QWEN3_VL_4B_VISION,
        image_token_id=weights_teacher.IMAGE_PAD_ID, video_token_id=weights_teacher.VIDEO_PAD_ID,
        vision_start_token_id=weights_teacher.VISION_START_ID, vision_end_token_id=weights_teacher.VISION_END_ID,
        tie_word_embeddings=True,
    )
    with torch.device(device):
        model = Qwen3VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16, attn_implementation="sdpa")
    model.eval().requires_grad_(False)
    spec = VisionSpec(patch_size=16, temporal_patch_size=2, merge_size=2, image_mean=(0.5,) * 3, image_std=(0.5,) * 3,
                      image_min_pixels=56 * 56, image_max_pixels=28 * 28 * 1280, video_min_pixels=128 * 32 * 32,
                      video_max_pixels=frames * size * size, video_budget="per_video")
    return QwenVLTeacher(model=model, tokenizer=tokenizer, chat_template=tokenizer.chat_template, spec=spec,
                         video_fps=2.0, question_suffix=" Answer with Yes or No.", system_prompt=None,
                         max_new_tokens=96, synthesis_retries=0, shared_prefix=True)


def _keep_fp32(model: torch.nn.Module, names: list[str]) -> None:
    """What from_pretrained(torch_dtype=bf16) does: modules named in ``_keep_in_fp32_modules`` stay fp32."""
    for name, module in model.named_modules():
        if any(part in names for part in name.split(".")):
            module.float()


def make_instance(frames: int, size: int, prompt: str = PROMPT) -> Instance:
    first = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    return Instance(id="bench-0", bench="bench", task="maze", category="spatial", split="id", prompt=prompt,
                    num_frames=frames, height=size, width=size, fps=16, first_frame=first)


def sync(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def step_breakdown(student: WanStudent, teacher: QwenVLTeacher, instance: Instance, k: int,
                   device: torch.device) -> dict[str, float]:
    """Seconds of each part of one optimisation step (forwards with grad, then one backward)."""
    cond = student.encode(instance)
    noise = student.make_noise(cond, seed=0)
    weighted = weigh_questions(teacher.synthesize_queries(instance, max_process=2), 0.5)
    student.reset_lora(0)
    params = student.lora_parameters()  # activates the adapter, as vlmteach's optimiser does
    t0 = sync(device)
    x0 = student.predict_x0(cond, noise, student.sigmas[0])
    t1 = sync(device)
    frames, _ = select_frames(student.decode(x0, light=True), k)
    t2 = sync(device)
    loss = multi_vqa_loss(teacher.yes_nll(frames, weighted.questions), weighted.weights)
    t3 = sync(device)
    loss.backward()
    t4 = sync(device)
    for p in params:
        p.grad = None
    return {"dit_forward_s": t1 - t0, "light_decode_s": t2 - t1, "teacher_forward_s": t3 - t2, "backward_s": t4 - t3,
            "questions": len(weighted.questions)}


def profile_steps(student: WanStudent, teacher: QwenVLTeacher, instance: Instance, k: int, steps: int,
                  out: Path) -> None:
    """``steps`` optimisation steps (forward + backward) under torch.profiler: writes the operators and
    kernels that take the most device time to ``out`` (the profile of the path measured last)."""
    cond = student.encode(instance)
    noise = student.make_noise(cond, seed=0)
    weighted = weigh_questions(teacher.synthesize_queries(instance, max_process=2), 0.5)
    params = student.lora_parameters()

    def run_steps() -> None:
        for _ in range(steps):
            x0 = student.predict_x0(cond, noise, student.sigmas[0])
            frames, _ = select_frames(student.decode(x0, light=True), k)
            multi_vqa_loss(teacher.yes_nll(frames, weighted.questions), weighted.weights).backward()
            for p in params:
                p.grad = None
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    gpu = [torch.profiler.ProfilerActivity.CUDA] if torch.cuda.is_available() else []
    timeline = ""
    if gpu:
        # The timeline from the GPU's activity alone: recording every host-side operator slows the launches
        # and would show idle time the unprofiled loop does not have.
        with torch.profiler.profile(activities=gpu) as timeline_prof:
            run_steps()
        with tempfile.TemporaryDirectory() as tmp:
            timeline_prof.export_chrome_trace(f"{tmp}/trace.json")
            events = json.loads(Path(f"{tmp}/trace.json").read_text()).get("traceEvents", [])
        timeline = timeline_markdown(gpu_timeline(events, steps)) + "\n" + gaps_markdown(idle_gaps(events, steps))
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU, *gpu]) as prof:
        run_steps()
    averages = prof.key_averages()
    by_device = averages.table(sort_by="self_device_time_total", row_limit=60, max_name_column_width=90)
    by_host = averages.table(sort_by="self_cpu_time_total", row_limit=30, max_name_column_width=90)
    out.write_text(f"{steps} optimisation steps (DiT forward, light decode, teacher forward, backward)\n\n"
                   f"{timeline or 'GPU timeline: no GPU activity recorded.'}\n"
                   f"Operators and kernels by device time (host operators recorded too):\n{by_device}\n\n"
                   f"By host time:\n{by_host}\n")


def run_path(name: str, student: WanStudent, teacher: QwenVLTeacher, instance: Instance, steps: int, k: int,
             device: torch.device) -> dict[str, Any]:
    """Warm-up, then one timed instance of ``steps`` updates; peak memory over the timed instance."""
    ctx = MethodContext(student=student, teacher=teacher, bench=None, seed=1234)
    start = sync(device)
    warmup = make_instance(instance.num_frames, instance.height, WARMUP_PROMPT)
    VlmTeach(num_steps=1, early_stop=False, max_process=2, num_frames=k).run(warmup, ctx)  # compiles, if compiled
    warmup_s = sync(device) - start
    breakdown = step_breakdown(student, teacher, instance, k, device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    method = VlmTeach(num_steps=steps, early_stop=False, max_process=2, num_frames=k)
    start = sync(device)
    out = method.run(instance, ctx)
    total = sync(device) - start
    per_step = [s.seconds for s in out.trace.per_step if s.seconds is not None]
    per_step = per_step[1:] or per_step  # the first pays lazy inits
    result = {
        "path": name, "shared_prefix": teacher.shared_prefix, "steps": out.steps, "instance_s": total,
        "warmup_s": warmup_s,
        "s_per_step_mean": statistics.mean(per_step) if per_step else None,
        "s_per_step_median": statistics.median(per_step) if per_step else None,
        "timings": out.timings, "questions": len(out.trace.loss_questions),
        "frames_decoded": out.trace.frames_decoded, "step_breakdown": breakdown,
    }
    if device.type == "cuda":
        result["peak_gib"] = torch.cuda.max_memory_allocated(device) / GIB
        result["peak_reserved_gib"] = torch.cuda.max_memory_reserved(device) / GIB
    return result


def hardware(device: torch.device) -> dict[str, Any]:
    info = {"device": str(device), "torch": torch.__version__, "python": platform.python_version()}
    for module in ("transformers", "diffusers", "peft"):
        info[module] = __import__(module).__version__
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info |= {"gpu": props.name, "gpu_memory_gib": props.total_memory / GIB, "cuda": torch.version.cuda}
    else:
        info["cpu"] = platform.processor() or platform.machine()
    return info


def markdown(report: dict[str, Any]) -> str:
    hw, shapes = report["hardware"], report["shapes"]
    lines = [f"# vlmteach GPU benchmark: {hw.get('gpu', hw['device'])}", "",
             f"torch {hw['torch']}, transformers {hw['transformers']}, diffusers {hw['diffusers']}, peft {hw['peft']}."
             f" Shapes: {shapes}. Random weights of the real sizes; {report['steps']} steps per instance, early stop"
             " off; instance = question synthesis + encode + steps (+1 evaluation) + final 4-step sample + full VAE"
             " decode.", "",
             "| path | s / step (median) | s / instance | peak GiB (allocated) | x naive (step, instance) |"
             " x bound (step, instance) | DiT fwd | decode | teacher fwd | backward | synthesis s | final s |"
             " warm-up s (compiles) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["paths"]:
        if "error" in r:
            lines.append(f"| {r['path']} | {r['error']} | | | | | | | | | | | |")
            continue
        b, t = r["step_breakdown"], r["timings"]
        peak = f"{r['peak_gib']:.1f}" if "peak_gib" in r else "n/a"
        lines.append(f"| {r['path']} | {r['s_per_step_median']:.3f} | {r['instance_s']:.1f} | {peak} | "
                     f"{_pair(r, 'speedup_vs_naive')} | {_pair(r, 'vs_bound')} | "
                     f"{b['dit_forward_s']:.3f} | {b['light_decode_s']:.3f} | {b['teacher_forward_s']:.3f} | "
                     f"{b['backward_s']:.3f} | {t['synthesis_s']:.2f} | {t['final_s']:.2f} | {r['warmup_s']:.1f} |")
    lines += ["", f"Targets (one H200): <= {TARGETS['s_per_step']} s per step, <= {TARGETS['s_per_instance']} s per "
              f"instance of 16 steps, peak <= {TARGETS['peak_gib']} GiB. x naive: how many times faster than the naive "
              f"path of the same run. x bound: seconds over issue 35's arithmetic bound ({BOUND_S_PER_STEP} s per step, "
              f"{BOUND_S_PER_INSTANCE} s per {BOUND_STEPS}-step instance), on an H200 only."]
    return "\n".join(lines) + "\n"


def _pair(row: dict[str, Any], key: str) -> str:
    pair = row.get(key)
    return "" if pair is None else " / ".join("" if x is None else f"{x:.2f}" for x in pair)


def add_ratios(results: list[dict[str, Any]], gpu: str | None, steps: int) -> None:
    """Each measured path's speed-up over the run's naive path, per step and per instance, and its seconds
    over the arithmetic bound (on the bound's GPU; per instance only at the bound's step count)."""
    measured = [r for r in results if "error" not in r]
    naive = next((r for r in measured if r["path"].partition(":")[0] == "naive"), None)
    for r in measured:
        r["speedup_vs_naive"] = None if naive is None else (
            naive["s_per_step_median"] / r["s_per_step_median"], naive["instance_s"] / r["instance_s"])
        r["vs_bound"] = None if not on_bound_gpu(gpu) else (
            r["s_per_step_median"] / BOUND_S_PER_STEP,
            r["instance_s"] / BOUND_S_PER_INSTANCE if steps == BOUND_STEPS else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny configs and shapes (a CPU check of the script)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--frames", type=int, default=None, help="default 89 (tiny: 17)")
    parser.add_argument("--size", type=int, default=None, help="default 512 (tiny: 64)")
    parser.add_argument("--k", type=int, default=24, help="frames shown to the teacher")
    parser.add_argument("--uncheckpointed", type=int, default=13, help="DiT blocks without checkpointing")
    # The default: the naive path, the configs as shipped, then experiment=fast_h200's settings one by one.
    parser.add_argument("--paths", default="naive,compiled_partial_ckpt_static_tcompile:20,"
                        "compiled_partial_ckpt_static_tcompile_lora16:20,compiled_partial_ckpt_static_tcompile_lora16:30,"
                        "compiled_fp8_static_tcompile_vae16_lora16:30")
    parser.add_argument("--profile", type=int, default=0, help="then profile N more steps of the last path")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "results" / "perf")
    args = parser.parse_args()
    device = torch.device(args.device)
    frames = args.frames or (17 if args.tiny else 89)
    size = args.size or (64 if args.tiny else 512)
    teacher_size = 64 if args.tiny else 448
    torch.backends.cuda.matmul.allow_tf32 = True

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        student = build_student(args.tiny, device, Path(tmp))
    teacher = build_teacher(args.tiny, device, args.k, teacher_size)
    build_s = time.perf_counter() - t0
    instance = make_instance(frames, size)
    print(f"built in {build_s:.1f} s; latent {student.latent_shape(frames, size, size)}; "
          f"LoRA {sum(p.numel() for p in student.lora_parameters()) / 1e6:.1f}M params", flush=True)

    results: list[dict[str, Any]] = []
    compiled = fp8 = teacher_compiled = False
    for spec in args.paths.split(","):
        name, _, blocks = spec.partition(":")
        flags = set(name.split("_"))
        teacher.shared_prefix = name != "naive"
        teacher.synthesis_cache_len = SYNTHESIS_CACHE_LEN if "static" in flags else None
        wants_compile, wants_fp8, wants_teacher_compile = "compiled" in flags, "fp8" in flags, "tcompile" in flags
        irreversible = [(compiled, wants_compile), (fp8, wants_fp8), (teacher_compiled, wants_teacher_compile)]
        if any(done and not wanted for done, wanted in irreversible):
            raise SystemExit(f"--paths: {spec!r} cannot follow a compiled or FP8 path; put those last")
        if wants_compile and not compiled:
            student.transformer.compile_repeated_blocks()  # what student.compile=true does
            compiled = True
        if wants_fp8 and not fp8:
            fp8_base_layers(student.transformer, device)  # what student.fp8=true does
            fp8 = True
        if wants_teacher_compile and not teacher_compiled:
            compile_decoder_layers(teacher.model.model.language_model.layers)  # what teacher.compile=true does
            teacher_compiled = True
        student.vae.to(torch.bfloat16 if "vae16" in flags else torch.float32)  # student.vae_dtype=bfloat16
        # student.lora.compute_dtype=bfloat16
        set_compute_dtype(student.transformer, torch.bfloat16 if "lora16" in flags else torch.float32)
        if "vsplit" in flags:
            teacher.model.set_attn_implementation({"vision_config": "sdpa"})  # packed_vision_attention=false
        else:
            use_packed_vision_attention(teacher.model)  # what teacher.packed_vision_attention=true does
        partial = bool(flags & {"partial", "fp8"})
        uncheckpointed = int(blocks) if blocks else args.uncheckpointed if partial else 0
        uncheckpointed = min(uncheckpointed, len(student.transformer.blocks))  # --tiny has 2 blocks
        checkpoint_blocks(student.transformer, skip_first=uncheckpointed)
        try:
            results.append(run_path(spec, student, teacher, instance, args.steps, args.k, device)
                           | {"uncheckpointed_blocks": uncheckpointed})
        except Exception as err:  # reported, not hidden: e.g. the path does not fit this GPU
            results.append({"path": spec, "error": f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"})
            for p in student.lora_parameters():
                p.grad = None
            if device.type == "cuda":
                torch.cuda.empty_cache()
        print(json.dumps(results[-1], default=float), flush=True)
        report = write_report(args, device, student, frames, size, teacher_size, build_s, results)
    print(markdown(report))
    if args.profile:
        profile = args.out / f"profile_{report_slug(report, args.tiny)}.txt"
        profile_steps(student, teacher, instance, args.k, args.profile, profile)
        print(profile.read_text())


def write_report(args, device, student, frames, size, teacher_size, build_s, results) -> dict[str, Any]:
    """Rewritten after every path, so a run cut short keeps what it measured."""
    hw = hardware(device)
    add_ratios(results, hw.get("gpu"), args.steps)
    report = {"hardware": hw, "build_s": build_s, "steps": args.steps, "targets": TARGETS,
              "shapes": {"frames": frames, "size": size, "latent": list(student.latent_shape(frames, size, size)),
                         "teacher_frames": args.k, "teacher_size": teacher_size, "questions": 3,
                         "uncheckpointed_blocks": args.uncheckpointed},
              "paths": results}
    slug = report_slug(report, args.tiny)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"bench_gpu_{slug}.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    (args.out / f"bench_gpu_{slug}.md").write_text(markdown(report))
    return report


def report_slug(report: dict[str, Any], tiny: bool) -> str:
    """``nvidia_h200`` (``tiny_cpu`` for a tiny CPU check): the files' suffix."""
    name = report["hardware"].get("gpu", report["hardware"]["device"].split(":")[0])
    return ("tiny_" if tiny else "") + "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()


if __name__ == "__main__":
    main()
