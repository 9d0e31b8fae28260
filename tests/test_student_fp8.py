"""student.fp8: FP8 products for the frozen base weights, checked against exact dequantised references."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.lora import LoraLayer
from test_student_wan import LORA, _perturb_lora_b, make_instance, micro

from harness.students.fp8 import FP8, Fp8FrozenLinear, fp8_base_layers, quantise_rows
from harness.types import UserError


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(a.flatten().float(), b.flatten().float(), dim=0).item()


def test_quantise_rows_scales_each_row_to_the_fp8_range():
    x = torch.randn(5, 32) * torch.tensor([1e-3, 1.0, 10.0, 1e3, 0.0]).unsqueeze(1)
    q, scale = quantise_rows(x)
    assert q.dtype == FP8 and scale.shape == (5, 1)
    assert torch.allclose(q[:4].float().abs().amax(dim=1), torch.full((4,), torch.finfo(FP8).max))
    assert not q[4].float().any()  # a zero row stays zero
    torch.testing.assert_close(q.float() * scale, x, rtol=0.07, atol=0.0)  # e4m3: 3 mantissa bits


def test_fp8_linear_computes_both_products_from_the_quantised_operands():
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 48).to(torch.bfloat16)
    fp8 = Fp8FrozenLinear(linear)
    x = torch.randn(2, 7, 64, dtype=torch.bfloat16, requires_grad=True)
    y = fp8(x)
    assert y.shape == (2, 7, 48) and y.dtype == torch.bfloat16
    # forward: exactly the product of the dequantised operands (then bf16 rounding), bias added
    x8, xs = quantise_rows(x.detach().reshape(-1, 64))
    w8, ws = quantise_rows(linear.weight.detach())
    expected = (x8.float() * xs) @ (w8.float() * ws).t() + linear.bias.float()
    torch.testing.assert_close(y.detach().reshape(-1, 48).float(), expected, rtol=1e-2, atol=1e-2)
    # backward: dy quantised per row, times the weight quantised per input feature
    dy = torch.randn_like(y)
    y.backward(dy)
    g8, gs = quantise_rows(dy.reshape(-1, 48))
    wt8, wts = quantise_rows(linear.weight.detach().t().contiguous())
    expected_dx = (g8.float() * gs) @ (wt8.float() * wts).t()
    torch.testing.assert_close(x.grad.reshape(-1, 64).float(), expected_dx, rtol=1e-2, atol=1e-2)
    # and both stay close to the bf16 layer itself
    assert _cosine(y.detach(), linear(x.detach())) > 0.998


def test_fp8_student_swaps_every_lora_base_layer_and_keeps_the_gradient():
    reference, student = micro(dtype="bfloat16"), micro(dtype="bfloat16", fp8=True)
    layers = [m for m in student.transformer.modules() if isinstance(m, LoraLayer)]
    assert layers and all(isinstance(m.base_layer, Fp8FrozenLinear) for m in layers)

    def nbytes(s):
        return sum(t.numel() * t.element_size() for t in [*s.transformer.parameters(), *s.transformer.buffers()])
    assert nbytes(student) < 1.05 * nbytes(reference)  # two FP8 copies in place of one bf16 copy, not beside it
    cond = student.encode(make_instance(17, 32, i2v=False))
    noise = student.make_noise(cond, 0)

    def one_step(s):
        _perturb_lora_b(s)
        x0 = s.predict_x0(cond, noise, 1.0)
        x0.square().mean().backward()
        return x0.detach(), [p.grad for p in s.lora_parameters()]

    (x_ref, g_ref), (x_fp8, g_fp8) = one_step(reference), one_step(student)
    assert _cosine(x_ref, x_fp8) > 0.99
    cosines = [_cosine(a, b) for a, b in zip(g_ref, g_fp8, strict=True)]
    assert min(cosines) > 0.9 and sum(cosines) / len(cosines) > 0.98


def test_fp8_compiles_with_the_regional_compile():
    """With the adapter's products in bf16 as well (``experiment=fast_h200``): one compilation checks both."""
    lora = LORA | {"compute_dtype": "bfloat16"}
    eager = micro(dtype="bfloat16", fp8=True, lora=lora)
    compiled = micro(dtype="bfloat16", fp8=True, lora=lora, compile=True, gradient_checkpointing=True,
                     uncheckpointed_blocks=1)
    cond = eager.encode(make_instance(17, 32, i2v=False))
    noise = eager.make_noise(cond, 0)
    grads = []
    for s in (eager, compiled):
        _perturb_lora_b(s)
        s.predict_x0(cond, noise, 1.0).square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in s.lora_parameters()]))
    assert _cosine(*grads) > 0.98


@pytest.mark.parametrize(("settings", "message"), [
    (dict(dtype="float32", fp8=True), "needs student.dtype: bfloat16"),
    (dict(dtype="bfloat16", fp8=True, lora=None), "set student.lora"),
])
def test_fp8_refuses_what_it_cannot_run(settings, message):
    with pytest.raises(UserError, match=message):
        micro(**settings)


def test_fp8_refuses_a_model_it_would_leave_unchanged():
    model = inject_adapter_in_model(LoraConfig(target_modules=["0"], r=2), torch.nn.Sequential(torch.nn.Linear(24, 24)))
    model.to(torch.bfloat16)
    with pytest.raises(UserError, match="multiples of 16"):
        fp8_base_layers(model, torch.device("cpu"))
