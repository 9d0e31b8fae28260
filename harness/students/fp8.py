"""FP8 matmuls for the frozen base weights of a LoRA-adapted model (``student.fp8``).

The loop never trains the base weights, so a frozen ``nn.Linear`` needs only two products: ``y = x W^T``
forward and ``dx = dy W`` backward, never ``dW``. Both run as ``torch._scaled_mm`` in float8 e4m3 with
row-wise scales (one per token of ``x`` / ``dy``, one per output row of the weight it multiplies): the
weight is quantised once, in both layouts the two products need, and its bf16 copy is freed (two FP8
copies take the bytes of one bf16 copy). The LoRA branch is untouched and stays in fp32. Hopper-class
GPUs (compute capability >= 8.9) run FP8 matmuls natively; the CPU build of torch runs them too (tests).
"""

from __future__ import annotations

import torch
from peft.tuners.lora import LoraLayer

from harness.types import UserError

FP8 = torch.float8_e4m3fn
_FP8_MAX = torch.finfo(FP8).max
_ALIGN = 16  # _scaled_mm needs both matrix dimensions of the weight to be multiples of 16


def quantise_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` [M, K] -> (FP8 [M, K], fp32 scales [M, 1]) with ``x ~= fp8 * scale`` row by row."""
    scale = x.detach().abs().amax(dim=1, keepdim=True).float().clamp(min=1e-12) / _FP8_MAX
    return (x.float() / scale).clamp(-_FP8_MAX, _FP8_MAX).to(FP8), scale


class _FrozenFp8Matmul(torch.autograd.Function):
    """``x [M, K] @ W^T``, W given as W8 [N, K] with scales [1, N] and as (W^T)8 [K, N] with scales [1, K]."""

    @staticmethod
    def forward(ctx, x, w8, w_scale, wt8, wt_scale):  # noqa: ANN001, ANN205 (autograd.Function signature)
        x8, x_scale = quantise_rows(x)
        ctx.save_for_backward(wt8, wt_scale)
        return torch._scaled_mm(x8, w8.t(), scale_a=x_scale, scale_b=w_scale, out_dtype=x.dtype)

    @staticmethod
    def backward(ctx, grad_out):  # noqa: ANN001, ANN205
        wt8, wt_scale = ctx.saved_tensors
        g8, g_scale = quantise_rows(grad_out.contiguous())
        grad_x = torch._scaled_mm(g8, wt8.t(), scale_a=g_scale, scale_b=wt_scale, out_dtype=grad_out.dtype)
        return grad_x, None, None, None, None


class Fp8FrozenLinear(torch.nn.Module):
    """A frozen ``nn.Linear`` whose forward and input-gradient products run in FP8."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        weight = linear.weight.detach()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.dtype = weight.dtype
        w8, w_scale = quantise_rows(weight)
        wt8, wt_scale = quantise_rows(weight.t().contiguous())
        # Scales stored as the [1, N] rows _scaled_mm takes for its second operand.
        w_scale, wt_scale = w_scale.t().contiguous(), wt_scale.t().contiguous()
        for name, value in (("w8", w8), ("w_scale", w_scale), ("wt8", wt8), ("wt_scale", wt_scale)):
            self.register_buffer(name, value)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.to(self.dtype).reshape(-1, self.in_features).contiguous()
        y = _FrozenFp8Matmul.apply(flat, self.w8, self.w_scale, self.wt8, self.wt_scale)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, fp8=e4m3 row-wise"


def fp8_base_layers(model: torch.nn.Module, device: torch.device) -> int:
    """Swap the frozen base ``nn.Linear`` of every LoRA layer in ``model`` for an ``Fp8FrozenLinear``;
    returns how many were swapped. Call after the LoRA is attached and the model is on ``device``."""
    if device.type == "cuda" and torch.cuda.get_device_capability(device) < (8, 9):
        raise UserError(f"student.fp8 needs FP8 matmuls (compute capability >= 8.9, e.g. H100/H200/L40S); "
                        f"{torch.cuda.get_device_name(device)} has none: set student.fp8=false")
    layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
    if not layers:
        raise UserError("student.fp8 applies to the LoRA's base layers: set student.lora")
    swapped = 0
    for layer in layers:
        base = layer.base_layer
        if not isinstance(base, torch.nn.Linear):
            continue
        if base.weight.dtype != torch.bfloat16:
            raise UserError(f"student.fp8 needs student.dtype: bfloat16 (the base weights are {base.weight.dtype})")
        if base.in_features % _ALIGN or base.out_features % _ALIGN:
            continue  # _scaled_mm cannot take this shape; the layer keeps its bf16 matmul
        layer.base_layer = Fp8FrozenLinear(base)
        swapped += 1
    if not swapped:
        raise UserError(f"student.fp8: none of the {len(layers)} LoRA base layers is an nn.Linear with both sizes "
                        f"multiples of {_ALIGN}, as FP8 matmuls need: set student.fp8=false")
    return swapped
