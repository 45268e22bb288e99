"""sRGB transfer functions (IEC 61966-2-1), exact piecewise form, differentiable.

Photos and the unwrapped texture are sRGB-encoded; albedo, lighting and rendered
radiance are linear (docs/conventions.md). These two functions are the boundary.

Both take any shape and dtype. With ``clamp=True`` (default) the input is clamped to
[0, 1] first (gradient 0 outside). With ``clamp=False`` the curve is extended: the
linear segment continues below 0 and the power segment above 1, so over-exposed
renders keep a gradient. Either way the branch not taken is fed a safe value, so no
NaN/inf gradient leaks through ``torch.where``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["LUMA", "srgb_to_linear", "linear_to_srgb", "scale_exposure"]

#: Rec. 709 luminance weights of linear RGB.
LUMA = (0.2126, 0.7152, 0.0722)

_A = 0.055
_GAMMA = 2.4
_ENC_KNEE = 0.04045  # sRGB-encoded value where the two pieces meet
_LIN_KNEE = 0.0031308  # linear value where the two pieces meet


def srgb_to_linear(x: Tensor, clamp: bool = True) -> Tensor:
    """Decode sRGB values to linear light.

    Args:
        x: sRGB-encoded values, any shape, nominally in [0, 1].
        clamp: clamp to [0, 1] first (see module docstring).

    Returns:
        Linear values, same shape and dtype.

    >>> srgb_to_linear(torch.tensor([0.0, 0.5, 1.0]))
    tensor([0.0000, 0.2140, 1.0000])
    """
    if clamp:
        x = x.clamp(0.0, 1.0)
    low = x / 12.92
    safe = torch.clamp(x, min=_ENC_KNEE)
    high = ((safe + _A) / (1.0 + _A)) ** _GAMMA
    return torch.where(x <= _ENC_KNEE, low, high)


def linear_to_srgb(x: Tensor, clamp: bool = True) -> Tensor:
    """Encode linear light as sRGB.

    Args:
        x: linear values, any shape, nominally in [0, 1].
        clamp: clamp to [0, 1] first (see module docstring).

    Returns:
        sRGB-encoded values, same shape and dtype.

    >>> linear_to_srgb(torch.tensor([0.0, 0.214041, 1.0]))
    tensor([0.0000, 0.5000, 1.0000])
    """
    if clamp:
        x = x.clamp(0.0, 1.0)
    low = x * 12.92
    safe = torch.clamp(x, min=_LIN_KNEE)
    high = (1.0 + _A) * safe ** (1.0 / _GAMMA) - _A
    return torch.where(x <= _LIN_KNEE, low, high)


def scale_exposure(srgb: Tensor, gain: Tensor | float) -> Tensor:
    """sRGB values as if the scene's light were ``gain`` times as bright: decoded, scaled in
    linear light, encoded again and clipped to [0, 1] (a brighter exposure clips).

    Args:
        srgb: sRGB-encoded values ``[B, C, H, W]`` (or any shape ``gain`` broadcasts to).
        gain: a scalar, or e.g. ``[B, 1, 1, 1]`` for one gain per example.

    >>> scale_exposure(torch.tensor([0.5]), 0.25)   # a quarter of the light
    tensor([0.2565])
    """
    return linear_to_srgb(srgb_to_linear(srgb) * gain)
