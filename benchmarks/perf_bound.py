"""Issue 35's arithmetic bound for a vlmteach step at the paper's shapes, which the GPU benchmarks divide by.

FastWan2.2-5B at 89x512x512 (5,888 DiT tokens) with a Qwen3-VL-4B teacher on 24 frames: DiT forward ~7.2e13
FLOP with attention, its activation-gradient backward ~8.5e13, the teacher with the shared prefix ~7e13, its
vision tower ~1e13; ~2.2e14 FLOP at the ~790 TFLOP/s a bf16 matmul reaches on one H200: ~0.27 s per step,
~7.5 s per 16-step instance. Estimated, not measured; other GPUs get no ratio to it.
"""

BOUND_GPU = "H200"
BOUND_S_PER_STEP = 0.27
BOUND_S_PER_INSTANCE = 7.5
BOUND_STEPS = 16


def on_bound_gpu(gpu: str | None) -> bool:
    return gpu is not None and BOUND_GPU in gpu
