"""A resettable per-instance LoRA on a diffusers model, through peft."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from peft import LoraConfig
from peft.tuners.lora import LoraLayer

ADAPTER_NAME = "tto"
# peft initialisations that draw A at random and set B to zero, so a fresh adapter equals the base model.
_ZERO_OUTPUT_INITS = {"gaussian": "gaussian", "kaiming": True}
COMPUTE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class LoraSpec:
    """The LoRA hyper-parameters of the ``student.lora`` config block. ``scale`` is the adapter's effective
    scale: it adds ``scale * B A x`` to each target layer (peft's ``lora_alpha / r``, times any adapter
    weight applied on top), so with Adam each step moves the function about ``scale`` times as far."""

    rank: int = 16
    scale: float = 1.0
    target_modules: list[str] = field(
        default_factory=lambda: ["to_q", "to_k", "to_v", "to_out.0", "ffn.net.0.proj", "ffn.net.2"]
    )
    init: str = "gaussian"
    dropout: float = 0.0
    # The dtype of the adapter's products; its weights, gradients and optimiser state stay fp32 either way.
    # bfloat16 multiplies in the base model's precision: no fp32 copy of each target layer's input is made
    # and kept for the backward (less memory, fewer TF32 products), at bf16 rounding of the update.
    compute_dtype: str = "float32"
    # The learning rate this adapter is tuned with, where it is the student's own (a method's ``lr`` reads it
    # through the config: conf/method/vlmteach.yaml); None: the method's default.
    lr: float | None = None

    def __post_init__(self) -> None:
        if self.init not in _ZERO_OUTPUT_INITS:
            raise ValueError(
                f"student.lora.init must be one of {sorted(_ZERO_OUTPUT_INITS)} (B starts at zero), got {self.init!r}"
            )
        if self.rank < 1:
            raise ValueError(f"student.lora.rank must be >= 1, got {self.rank}")
        if not self.scale > 0:
            raise ValueError(f"student.lora.scale must be positive, got {self.scale}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"student.lora.lr must be > 0 (or null for the method's default), got {self.lr}")
        if self.compute_dtype not in COMPUTE_DTYPES:
            raise ValueError(f"student.lora.compute_dtype must be one of {sorted(COMPUTE_DTYPES)}, "
                             f"got {self.compute_dtype!r}")
        if self.dropout != 0.0:  # the student runs in eval mode, where peft's dropout is a no-op
            raise ValueError(f"student.lora.dropout must be 0 (the student stays in eval mode), got {self.dropout}")

    @property
    def peft_init(self) -> bool | str:
        return _ZERO_OUTPUT_INITS[self.init]

    @property
    def torch_compute_dtype(self) -> torch.dtype:
        return COMPUTE_DTYPES[self.compute_dtype]


class CastLinear(torch.nn.Linear):
    """A LoRA factor whose fp32 weight (what the optimiser updates) multiplies in ``compute_dtype``: the
    cast is part of the graph, so the gradient reaches the fp32 weight."""

    compute_dtype: torch.dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.to(self.compute_dtype), self.weight.to(self.compute_dtype))


def attach_lora(model: torch.nn.Module, spec: LoraSpec) -> list[torch.nn.Parameter]:
    """Freeze ``model``, add the adapter in fp32 and return its (trainable) parameters."""
    model.requires_grad_(False)
    model.add_adapter(
        LoraConfig(
            r=spec.rank,
            lora_alpha=spec.scale * spec.rank,  # peft scales by lora_alpha / r
            target_modules=list(spec.target_modules),
            init_lora_weights=spec.peft_init,
            lora_dropout=spec.dropout,
        ),
        adapter_name=ADAPTER_NAME,
    )
    params = []
    for module in _lora_layers(model):
        for sub in (module.lora_A[ADAPTER_NAME], module.lora_B[ADAPTER_NAME]):
            sub.to(torch.float32)
            for p in sub.parameters():
                p.requires_grad_(True)
                params.append(p)
    set_compute_dtype(model, spec.torch_compute_dtype)
    reset_lora(model, spec, seed=0)  # independent of the global RNG state at load time
    return params


def set_compute_dtype(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """The adapter's products in ``dtype``, its weights fp32 either way. fp32: peft casts each layer's
    input to the adapter's dtype. Otherwise the factors cast their operands themselves (a no-op for an input
    already in ``dtype``), and peft's cast is off."""
    for module in _lora_layers(model):
        module.cast_input_dtype_enabled = dtype == torch.float32
        for sub in (module.lora_A[ADAPTER_NAME], module.lora_B[ADAPTER_NAME]):
            if dtype == torch.float32:
                sub.__class__ = torch.nn.Linear
            else:
                sub.__class__, sub.compute_dtype = CastLinear, dtype


def reset_lora(model: torch.nn.Module, spec: LoraSpec, seed: int) -> None:
    """Re-draw A and zero B in place, deterministically from ``seed``; the global RNG is left untouched."""
    cuda_devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=cuda_devices), torch.no_grad():
        torch.manual_seed(seed)
        for module in _lora_layers(model):
            module.reset_lora_parameters(ADAPTER_NAME, spec.peft_init)


class BatchedAdapters:
    """What ``batched_lora`` yields: the trainable stacks (A [N, r, in] and B [N, out, r] per layer, fp32, in the
    order of the layers' ``lora_A`` / ``lora_B`` weights) and which adapters the batch runs through."""

    def __init__(self, params: list[torch.nn.Parameter]):
        self.params = params
        self.rows: torch.Tensor | None = None  # None: batch element i through adapter i

    def use_rows(self, rows: Sequence[int]) -> None:
        """From now on batch element j runs through adapter ``rows[j]``: a batch of fewer elements (instances that
        have left) trains the others' adapters as before; the adapters left out get no gradient."""
        self.rows = torch.tensor(list(rows), dtype=torch.long, device=self.params[0].device)

    def adapter(self, row: int) -> list[torch.Tensor]:
        """Adapter ``row``'s weights (detached copies), one per stack: what ``load_adapter`` takes."""
        return [p.detach()[row].clone() for p in self.params]


@contextmanager
def batched_lora(model: torch.nn.Module, spec: LoraSpec, seeds: Sequence[int]) -> Iterator[BatchedAdapters]:
    """``len(seeds)`` independent adapters at once, the i-th on batch element i: each starts as ``reset_lora``
    with ``seeds[i]`` starts the adapter (same A, B = 0) and, since no element's output depends on another's
    weights, a batch step trains every adapter as its own step would. Yields their ``BatchedAdapters``; an
    element-wise optimiser over its stacks is one optimiser per adapter. peft's own adapter must be inactive
    (``disable_adapters``): forward hooks on its layers add the batched update to the base output. On exit the
    hooks go; peft's adapter keeps the A of ``seeds[-1]``."""
    layers = _lora_layers(model)
    drawn: dict[int, list[torch.Tensor]] = {id(layer): [] for layer in layers}
    for seed in seeds:
        reset_lora(model, spec, seed)
        for layer in layers:
            drawn[id(layer)].append(layer.lora_A[ADAPTER_NAME].weight.detach().float().clone())
    adapters, handles = BatchedAdapters([]), []
    try:
        for layer in layers:
            a = torch.nn.Parameter(torch.stack(drawn[id(layer)]))
            b = torch.nn.Parameter(a.new_zeros(len(seeds), layer.out_features, spec.rank))
            update = _batched_update(a, b, layer.scaling[ADAPTER_NAME], spec.torch_compute_dtype, adapters)
            handles.append(layer.register_forward_hook(update))
            adapters.params += [a, b]
        yield adapters
    finally:
        for handle in handles:
            handle.remove()


def load_adapter(model: torch.nn.Module, weights: Sequence[torch.Tensor]) -> None:
    """Set peft's adapter to one adapter of a ``batched_lora`` (``BatchedAdapters.adapter``), in place."""
    own = [sub.weight for layer in _lora_layers(model) for sub in (layer.lora_A[ADAPTER_NAME], layer.lora_B[ADAPTER_NAME])]
    with torch.no_grad():
        for param, value in zip(own, weights, strict=True):
            param.copy_(value)


def _batched_update(a: torch.Tensor, b: torch.Tensor, scaling: float, compute: torch.dtype, adapters: BatchedAdapters):
    def hook(module: torch.nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        x = args[0]
        if not module.disable_adapters:
            raise RuntimeError("batched_lora needs peft's own adapter inactive; call disable_adapters() first")
        a_rows, b_rows = (a, b) if adapters.rows is None else (a[adapters.rows], b[adapters.rows])
        if x.shape[0] != a_rows.shape[0]:
            raise ValueError(f"batched_lora holds {a_rows.shape[0]} adapters but the batch has {x.shape[0]} elements")
        rows = x.reshape(x.shape[0], -1, x.shape[-1]).to(compute)  # [N, rows, in]: element i by adapter i
        update = (rows @ a_rows.mT.to(compute)) @ b_rows.mT.to(compute) * scaling
        return output + update.reshape(output.shape).to(output.dtype)
    return hook


def _lora_layers(model: torch.nn.Module) -> list[LoraLayer]:
    return [m for m in model.modules() if isinstance(m, LoraLayer) and ADAPTER_NAME in m.lora_A]
