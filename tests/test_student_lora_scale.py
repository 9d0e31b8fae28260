"""The LoRA's effective scale (peft's alpha / rank, times any adapter weight) is one config value,
``student.lora.scale``: the adapter adds scale * B A x to each target layer's output."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir
from peft.tuners.lora import LoraLayer

from harness.config import CONF_DIR
from harness.students.lora import ADAPTER_NAME, LoraSpec, attach_lora


def tiny_model() -> torch.nn.Module:
    from diffusers import WanTransformer3DModel

    torch.manual_seed(0)
    return WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=8, in_channels=4,
                                 out_channels=4, text_dim=8, freq_dim=32, ffn_dim=16, num_layers=1)


@pytest.mark.parametrize("scale", [1.0, 2.5])
def test_the_adapter_adds_scale_times_b_a(scale):
    model = tiny_model()
    attach_lora(model, LoraSpec(rank=4, scale=scale, target_modules=["to_q"]))
    layer = next(m for m in model.modules() if isinstance(m, LoraLayer))
    torch.nn.init.normal_(layer.lora_B[ADAPTER_NAME].weight)
    x = torch.randn(3, layer.in_features)
    a, b = layer.lora_A[ADAPTER_NAME].weight, layer.lora_B[ADAPTER_NAME].weight
    with torch.no_grad():
        torch.testing.assert_close(layer(x) - layer.base_layer(x), scale * x @ a.T @ b.T, atol=1e-5, rtol=1e-5)


def test_the_configs_state_the_effective_scale():
    """The micro student keeps its shipped behaviour (alpha 16 at rank 16: 1.0); the Wan2.2 students take
    dual_process's, where the paper's rank 16 and lr 5e-5 come from (alpha 8 at rank 16, adapter weight 5)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):  # a variant inherits its base
        loras = {name: compose(config_name="config", overrides=[f"student={name}"]).student.lora
                 for name in ("micro", "wan22_ti2v_5b", "fastwan22_ti2v_5b")}
    scales = {name: lora.scale for name, lora in loras.items()}
    assert scales == {"micro": 1.0, "wan22_ti2v_5b": 8 / 16 * 5, "fastwan22_ti2v_5b": 8 / 16 * 5}
    assert all("alpha" not in lora for lora in loras.values())


def test_scale_must_be_positive():
    with pytest.raises(ValueError, match="student.lora.scale"):
        LoraSpec(rank=4, scale=0.0)
