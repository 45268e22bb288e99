"""Output heads that keep every reflectance map in its valid range.

A *kind* names a reflectance component (``"albedo"``, ``"specular"``, ``"normal"``); it fixes
the number of channels and how raw network activations ``v`` become a valid map:

- albedo ``[B, 3, H, W]``: linear RGB in [0, 1] via ``sigmoid(v)``;
- specular ``[B, 1, H, W]``: specular intensity t_r in [0, 1] via ``sigmoid(v)``;
- normal ``[B, 3, H, W]``: tangent-space unit vectors with z > 0 (the +z hemisphere), via
  ``normalize(v_x, v_y, softplus(v_z))``.

:func:`head_inverse` maps a valid map back to activations, so that a network can predict a
residual on top of an existing map (the detail enhancers do).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from facerefl.render.maps import KINDS, check_kind, map_channels

__all__ = ["KINDS", "check_kind", "map_channels", "head_apply", "head_inverse"]

_EPS = 1e-4


def head_apply(v: torch.Tensor, kind: str) -> torch.Tensor:
    """Raw activations ``[B, C, H, W]`` → valid map of ``kind`` (same shape).

    >>> head_apply(torch.zeros(1, 1, 2, 2), "specular").unique().item()
    0.5
    """
    if check_kind(kind) == "normal":
        z = F.softplus(v[:, 2:3])
        n = torch.cat([v[:, 0:2], z], dim=1)
        return n / n.norm(dim=1, keepdim=True).clamp_min(1e-8)
    return torch.sigmoid(v)


def head_inverse(m: torch.Tensor, kind: str) -> torch.Tensor:
    """Valid map ``[B, C, H, W]`` → activations ``v`` with ``head_apply(v) ≈ m``.

    Values at the range limits are clamped by a small epsilon (sigmoid never reaches 0 or
    1; softplus never reaches 0), so the round trip is exact only inside the open range.
    """
    if check_kind(kind) == "normal":
        z = m[:, 2:3].clamp(_EPS, 1.0)
        # softplus^-1(z) = log(exp(z) - 1); z is then rescaled by the normalization in
        # head_apply, which is exact because m is (close to) unit length.
        return torch.cat([m[:, 0:2], torch.log(torch.expm1(z))], dim=1)
    return torch.logit(m.clamp(_EPS, 1.0 - _EPS))
