"""TAEHV: a tiny, differentiable video decoder for Wan latents (madebyollin/taehv; LightX2V's LightTAE).

Written for this project; parameter names and shapes follow the public checkpoints (``taew2_2``,
``lighttaew2_2``, ``taew2_1``), so their state dicts load as they are. Only the decoder is built:
the checkpoints' ``encoder.*`` keys are ignored. ``harness.students.light_decoder`` loads it from the
``student.light_decoder`` config block.

The decoder is a stack of 2-D convolutions applied to every latent frame at once; temporal context
comes from ``MemBlock``s, which also read the previous frame's input (zeros before the first), and
``TGrow`` layers, which turn one frame into ``stride`` frames. Output frames are in [0, 1]; the first
``t_upscale - 1`` frames are the causal warm-up and are dropped, so F latent frames give
``t_upscale * (F - 1) + 1`` frames, as the Wan VAE does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from harness.types import UserError

# Index of the stage-opening conv, memblocks, upsample, tgrow and projection inside ``decoder``.
_STAGE_STARTS = (3, 9, 15)
_FIRST_CONV, _LAST_CONV = 1, 22


def _conv3(n_in: int, n_out: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, padding=1, bias=bias)


class SoftClamp(nn.Module):
    """Squash latents smoothly into (-3, 3): tanh(x / 3) * 3."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3.0) * 3.0


class MemBlock(nn.Module):
    """Residual conv block that also sees the previous frame's input (``past``)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Sequential(
            _conv3(2 * channels, channels), nn.ReLU(), _conv3(channels, channels), nn.ReLU(),
            _conv3(channels, channels),
        )

    def forward(self, x: torch.Tensor, past: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(torch.cat([x, past], dim=1)) + x)


class TGrow(nn.Module):
    """One frame -> ``stride`` frames through a 1x1 conv (``stride`` 1 is a learned projection)."""

    def __init__(self, channels: int, stride: int):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv2d(channels, channels * stride, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n_frames, channels, h, w = x.shape
        return self.conv(x).reshape(n_frames * self.stride, channels, h, w)


class TAEHVDecoder(nn.Module):
    """The TAEHV decoder. ``decoder`` keeps the checkpoints' layer indices (``decoder.<i>.*`` keys)."""

    def __init__(self, *, latent_channels: int = 48, patch_size: int = 2,
                 channels: tuple[int, int, int, int] = (256, 128, 64, 64),
                 time_upscale: tuple[bool, bool, bool] = (False, True, True)):
        super().__init__()
        if len(channels) != 4 or len(time_upscale) != 3:
            raise ValueError(f"need 4 channel widths and 3 time-upscale flags, got {channels}, {time_upscale}")
        self.latent_channels = latent_channels
        self.patch_size = patch_size
        c = channels
        layers: list[nn.Module] = [SoftClamp(), _conv3(latent_channels, c[0]), nn.ReLU()]
        for stage in range(3):
            width = c[stage]
            layers += [MemBlock(width), MemBlock(width), MemBlock(width), nn.Upsample(scale_factor=2),
                       TGrow(width, 2 if time_upscale[stage] else 1), _conv3(width, c[stage + 1], bias=False)]
        layers += [nn.ReLU(), _conv3(c[3], 3 * patch_size**2)]
        self.decoder = nn.Sequential(*layers)
        self.t_upscale = 2 ** sum(time_upscale)
        self.s_upscale = 8 * patch_size

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> TAEHVDecoder:
        """Build the decoder that ``state`` (a full TAEHV checkpoint) describes and load its weights."""
        decoder = {k: v for k, v in state.items() if k.startswith("decoder.")}
        others = sorted({k.split(".")[0] for k in state if not k.startswith(("decoder.", "encoder."))})
        try:
            first, last = decoder[f"decoder.{_FIRST_CONV}.weight"], decoder[f"decoder.{_LAST_CONV}.weight"]
            widths = [decoder[f"decoder.{s}.conv.0.weight"].shape[0] for s in _STAGE_STARTS]
            strides = [decoder[f"decoder.{s + 4}.conv.weight"].shape[0] // w for s, w in zip(_STAGE_STARTS, widths)]
        except KeyError as err:
            raise UserError(f"not a TAEHV checkpoint: missing {err.args[0]} (found prefixes {others or ['decoder']})") \
                from err
        if others or any(s not in (1, 2) for s in strides):
            raise UserError(f"not a TAEHV checkpoint: unexpected keys {others} or temporal strides {strides}")
        patch = round((last.shape[0] / 3) ** 0.5)
        if 3 * patch**2 != last.shape[0]:
            raise UserError(f"not a TAEHV checkpoint: the output conv has {last.shape[0]} channels, not 3 * patch**2")
        model = cls(latent_channels=first.shape[1], patch_size=patch, channels=(*widths, last.shape[1]),
                    time_upscale=tuple(s == 2 for s in strides))
        try:
            missing, unexpected = model.load_state_dict(decoder, strict=False)
        except RuntimeError as err:  # shape mismatches
            raise UserError(f"TAEHV checkpoint does not match the architecture: {err}") from err
        if missing or unexpected:
            raise UserError(f"TAEHV checkpoint does not match the architecture: missing {missing}, "
                            f"unexpected {unexpected}")
        return model

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents [N, T, C, h, w] -> frames [N, t_upscale*(T-1)+1, 3, H, W] in [0, 1], all frames in parallel."""
        if latents.ndim != 5 or latents.shape[2] != self.latent_channels:
            raise ValueError(f"expected latents [N, T, {self.latent_channels}, h, w], got {tuple(latents.shape)}")
        n = latents.shape[0]
        x = latents.flatten(0, 1)
        for layer in self.decoder:
            if isinstance(layer, MemBlock):
                frames = x.unflatten(0, (n, -1))
                past = F.pad(frames, (0, 0, 0, 0, 0, 0, 1, 0))[:, :-1]  # previous frame, zeros at t=0
                x = layer(x, past.flatten(0, 1))
            else:
                x = layer(x)
        x = F.pixel_shuffle(x, self.patch_size).clamp(0.0, 1.0)  # clamp: saturated pixels get no gradient
        return x.unflatten(0, (n, -1))[:, self.t_upscale - 1:]
