"""student.lora.compute_dtype: the adapter's products in bf16 while its weights, gradients and optimiser
state stay fp32. It changes outputs, so it is opt-in; these tests bound by how much, and show what it saves."""

from __future__ import annotations

import pytest
import torch
from test_student_wan import LORA, _perturb_lora_b, make_instance, micro

from harness.students.lora import LoraSpec


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def _one_step(dtype: str, compute_dtype: str = "float32") -> tuple[torch.Tensor, list[torch.Tensor], int]:
    """The one-step prediction, the LoRA gradients of a loss on it, and the bytes autograd kept for them
    (each storage once: a tensor saved twice, or a view of one, is not counted twice)."""
    student = micro(dtype=dtype, lora=LORA | {"compute_dtype": compute_dtype})
    cond = student.encode(make_instance(17, 32, i2v=False))
    noise = student.make_noise(cond, 0)
    _perturb_lora_b(student)
    storages: dict[int, int] = {}

    def keep(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
        x0 = student.predict_x0(cond, noise, 1.0)
    x0.square().mean().backward()
    params = student.lora_parameters()
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in params)
    return x0.detach(), [p.grad for p in params], sum(storages.values())


def test_bf16_products_add_little_to_the_error_a_bf16_base_already_has():
    """Against the all-fp32 student: the bf16 base with the fp32 adapter is off by ~1.3 % (prediction) and
    ~1.0 % (mean gradient); bf16 products make it ~1.4 % and ~1.2 % (measured on the micro student)."""
    x_ref, g_ref, _ = _one_step("float32")
    errors = {}
    for compute in ("float32", "bfloat16"):
        x0, grads, _ = _one_step("bfloat16", compute)
        per_layer = [_relative(g, r) for g, r in zip(grads, g_ref, strict=True)]
        errors[compute] = (_relative(x0, x_ref), sum(per_layer) / len(per_layer))
    (x_fp32, g_fp32), (x_bf16, g_bf16) = errors["float32"], errors["bfloat16"]
    assert x_fp32 > 1e-3 and g_fp32 > 1e-3  # the bf16 base differs from fp32: the bounds below are relative
    assert x_bf16 < 1.25 * x_fp32 and g_bf16 < 1.5 * g_fp32


def test_bf16_products_keep_no_fp32_copy_of_the_layer_inputs():
    """peft casts each target layer's input to the adapter's dtype and autograd keeps that copy; with bf16
    products the adapter multiplies the bf16 input the base layer already keeps (-24 % on the micro student)."""
    *_, kept_fp32 = _one_step("bfloat16", "float32")
    *_, kept_bf16 = _one_step("bfloat16", "bfloat16")
    assert kept_bf16 < 0.85 * kept_fp32


def test_an_unknown_compute_dtype_is_refused():
    with pytest.raises(ValueError, match="compute_dtype must be one of"):
        LoraSpec(compute_dtype="float16")

