"""Albedo-level regressor (beyond the paper): texture T → the skin's mean albedo per channel.

The photo fixes only albedo × irradiance, so the fit's albedo level is the prior's choice
(``docs/albedo_gauge.md``). The encoders give one prior as a side effect of drawing the
albedo map; this network is trained for that number alone, with a log-space loss, and the
fit's gauge can take its value as the level (``fit.gauge_level``).

Same body as the light regressor (:class:`~facerefl.models.components.light.SHRegressor`:
ten conv3×3-BN-ReLU layers in five stages, global mean pooling) with a 3-way linear head
that predicts ``log`` of the level, so the output is positive and the loss is relative.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facerefl.data.layout import eyes_coverage
from facerefl.models.components.autoencoder import resize_map
from facerefl.models.components.light import SHRegressor

__all__ = ["AlbedoLevelRegressor", "skin_level", "level_errors", "rescale_to_level", "eyes_fixed"]


class AlbedoLevelRegressor(nn.Module):
    """T ``[B, 4, H, W]`` (sRGB RGB + skin mask, UV space) → ``log`` of the mean linear
    albedo over the valid skin, ``[B, 3]``.

    Args:
        input_size: side T is resized to.
        width: channels of the first stage (stages use width·(1, 2, 4, 8, 8)).
        channels: outputs (3 for the albedo; 1 when trained for the specular map's level,
            ``target="specular"`` of :class:`~facerefl.models.level_module.AlbedoLevelModule`).
    """

    def __init__(self, input_size: int = 64, width: int = 16, channels: int = 3) -> None:
        super().__init__()
        self.input_size = input_size
        body = SHRegressor(input_size, width)
        self.features = body.features
        self.fc = nn.Linear(body.fc.in_features, channels)

    def forward(self, texture: torch.Tensor) -> torch.Tensor:
        """``log`` level ``[B, channels]``; :meth:`level` gives the level itself."""
        return self.fc(self.features(resize_map(texture, self.input_size)).mean(dim=(2, 3)))

    def level(self, texture: torch.Tensor) -> torch.Tensor:
        """Mean linear albedo over the valid skin ``[B, 3]`` (positive)."""
        return self(texture).exp()


def _skin_mask(texture: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """T's mask channel on the grid of ``like`` ``[B, C, H, W]`` (bilinear, > 0.5) →
    ``[B, 1, H, W]``; an example with no skin gets the whole map."""
    mask = F.interpolate(texture[:, 3:4], size=like.shape[-2:], mode="bilinear", align_corners=False)
    mask = (mask > 0.5).to(like.dtype)
    empty = mask.sum((2, 3), keepdim=True) < 1
    return torch.where(empty, torch.ones_like(mask), mask)


def skin_level(albedo: torch.Tensor, texture: torch.Tensor) -> torch.Tensor:
    """Per-channel mean of ``albedo`` ``[B, 3, H, W]`` over T's valid skin → ``[B, 3]``.

    T's mask channel (``texture`` ``[B, 4, Ht, Wt]``) is resampled to the albedo's grid
    (bilinear, > 0.5); an example with no skin falls back to its whole map. The training
    target of :class:`AlbedoLevelRegressor`, and what the fit's gauge sets.
    """
    mask = _skin_mask(texture, albedo)
    return (albedo * mask).sum((2, 3)) / mask.sum((2, 3))


def level_errors(pred_log: torch.Tensor, albedo: torch.Tensor, texture: torch.Tensor) -> torch.Tensor:
    """``log`` level prediction ``[B, C]`` minus ``log`` of the true :func:`skin_level` of
    ``albedo`` ``[B, C, H, W]`` (or any map: the specular one, C = 1; floored at 1e-4)
    → ``[B, C]``."""
    return pred_log - skin_level(albedo, texture).clamp_min(1e-4).log()


def rescale_to_level(values: torch.Tensor, level: torch.Tensor, texture: torch.Tensor,
                     fixed: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale each channel of a map ``[B, C, H, W]`` (linear, in [0, 1]) so that its
    :func:`skin_level` becomes ``level`` ``[B, C]``; the result is clamped to [0, 1].

    ``fixed`` (``[H, W]`` or broadcastable to the map, in [0, 1]): how much of each texel
    keeps its value instead (the specular gauge's eyes, whose shine is not the skin's); a
    texel is multiplied by ``1 + (scale − 1)·(1 − fixed)``, with the scale solved so that
    the skin's mean still becomes ``level`` when fixed texels lie in the skin.

    Returns ``(map, scale [B, C])``. The fit's albedo gauge moves the albedo with it, and
    the specular map goes to the specular-level regressor's mean the same way.
    """
    keep = torch.zeros_like(values) if fixed is None else fixed.to(values).expand_as(values)
    mask = _skin_mask(texture, values)
    area = mask.sum((2, 3))
    kept = (mask * values * keep).sum((2, 3)) / area
    moved = (mask * values * (1 - keep)).sum((2, 3)) / area
    scale = ((level - kept) / moved.clamp(min=1e-6)).clamp(min=0)
    factor = 1 + (scale[..., None, None] - 1) * (1 - keep)
    return (values * factor).clamp(0, 1), scale


def eyes_fixed(specular: torch.Tensor) -> torch.Tensor:
    """The eye openings' coverage on the grid of a UV map ``[B, C, S, S]`` → ``[S, S]``
    (:func:`~facerefl.data.layout.eyes_coverage`): the ``fixed`` texels of the specular
    gauge. The synthetic faces give the eyes a specular intensity of their own (0.9),
    which the skin's shine does not scale."""
    return torch.from_numpy(eyes_coverage(specular.shape[-1])).to(specular)
