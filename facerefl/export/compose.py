"""Image compositing for the reconstruction outputs (pure tensor functions).

All images are ``[C, H, W]`` float tensors, row 0 at the top.
"""

from __future__ import annotations

import torch

from facerefl.render.color import linear_to_srgb


def _check_same(name: str, image: torch.Tensor, ref: torch.Tensor, channels: int) -> None:
    if image.ndim != 3 or image.shape[0] != channels or image.shape[1:] != ref.shape[1:]:
        raise ValueError(
            f"{name} must be [{channels}, H, W] with H, W = {tuple(ref.shape[1:])}, got {tuple(image.shape)}"
        )


def composite_over_photo(rendering: torch.Tensor, photo: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Paste the rendered face over the photo.

    Args:
        rendering: ``[3, H, W]`` linear RGB rendering.
        photo: ``[3, H, W]`` sRGB photo in [0, 1].
        mask: ``[1, H, W]`` face coverage in [0, 1] (1 where the rendering is valid).
    Returns:
        ``[3, H, W]`` sRGB in [0, 1]: ``mask * linear_to_srgb(rendering.detach()) + (1 - mask) * photo``.
    """
    _check_same("photo", photo, rendering, 3)
    _check_same("mask", mask, rendering, 1)
    m = mask.detach().clamp(0.0, 1.0).to(photo.dtype)
    return m * linear_to_srgb(rendering.detach()).to(photo) + (1.0 - m) * photo.detach().clamp(0.0, 1.0)


def rgba_rendering(rendering: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[4, H, W]``: the sRGB-encoded rendering with the face mask as alpha."""
    _check_same("mask", mask, rendering, 1)
    return torch.cat([linear_to_srgb(rendering.detach()), mask.detach().clamp(0.0, 1.0).to(rendering)], dim=0)


def side_by_side(photo: torch.Tensor, composite: torch.Tensor, gain: float = 4.0, gap: int = 4) -> torch.Tensor:
    """``[photo | composite | gain * |photo - composite|]`` separated by white ``gap`` columns.

    Args:
        photo, composite: ``[3, H, W]`` sRGB in [0, 1].
        gain: multiplier applied to the absolute difference (clipped to 1) so small
            errors are visible; the report states it.
    Returns:
        ``[3, H, 3W + 2 gap]`` sRGB in [0, 1].
    """
    _check_same("composite", composite, photo, 3)
    diff = ((photo - composite).abs() * gain).clamp(0.0, 1.0)
    sep = torch.ones(3, photo.shape[1], gap, dtype=photo.dtype, device=photo.device)
    return torch.cat([photo.clamp(0, 1), sep, composite.clamp(0, 1), sep, diff], dim=2)
