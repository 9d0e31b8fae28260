"""A resettable per-instance LoRA on a diffusers model, through peft."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from peft import LoraConfig
from peft.tuners.lora import LoraLayer

ADAPTER_NAME = "tto"
# peft initialisations that draw A at random and set B to zero, so a fresh adapter equals the base model.
_ZERO_OUTPUT_INITS = {"gaussian": "gaussian", "kaiming": True}


@dataclass(frozen=True)
class LoraSpec:
    """The LoRA hyper-parameters of the ``student.lora`` config block."""

    rank: int = 16
    alpha: float = 16.0
    target_modules: list[str] = field(
        default_factory=lambda: ["to_q", "to_k", "to_v", "to_out.0", "ffn.net.0.proj", "ffn.net.2"]
    )
    init: str = "gaussian"
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.init not in _ZERO_OUTPUT_INITS:
            raise ValueError(
                f"student.lora.init must be one of {sorted(_ZERO_OUTPUT_INITS)} (B starts at zero), got {self.init!r}"
            )
        if self.rank < 1:
            raise ValueError(f"student.lora.rank must be >= 1, got {self.rank}")
        if self.dropout != 0.0:  # the student runs in eval mode, where peft's dropout is a no-op
            raise ValueError(f"student.lora.dropout must be 0 (the student stays in eval mode), got {self.dropout}")

    @property
    def peft_init(self) -> bool | str:
        return _ZERO_OUTPUT_INITS[self.init]


def attach_lora(model: torch.nn.Module, spec: LoraSpec) -> list[torch.nn.Parameter]:
    """Freeze ``model``, add the adapter in fp32 and return its (trainable) parameters."""
    model.requires_grad_(False)
    model.add_adapter(
        LoraConfig(
            r=spec.rank,
            lora_alpha=spec.alpha,
            target_modules=list(spec.target_modules),
            init_lora_weights=spec.peft_init,
            lora_dropout=spec.dropout,
        ),
        adapter_name=ADAPTER_NAME,
    )
    params = []
    for module in _lora_layers(model):
        # fp32 adapter on a possibly bf16 base: peft casts the LoRA input to the adapter dtype.
        for sub in (module.lora_A[ADAPTER_NAME], module.lora_B[ADAPTER_NAME]):
            sub.to(torch.float32)
            for p in sub.parameters():
                p.requires_grad_(True)
                params.append(p)
    reset_lora(model, spec, seed=0)  # independent of the global RNG state at load time
    return params


def reset_lora(model: torch.nn.Module, spec: LoraSpec, seed: int) -> None:
    """Re-draw A and zero B in place, deterministically from ``seed``; the global RNG is left untouched."""
    cuda_devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=cuda_devices), torch.no_grad():
        torch.manual_seed(seed)
        for module in _lora_layers(model):
            module.reset_lora_parameters(ADAPTER_NAME, spec.peft_init)


def _lora_layers(model: torch.nn.Module) -> list[LoraLayer]:
    return [m for m in model.modules() if isinstance(m, LoraLayer) and ADAPTER_NAME in m.lora_A]
