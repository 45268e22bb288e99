"""Bilinear texture lookup: the one boundary between UV maps (NCHW) and pixels (NHWC).

UV follows ``docs/conventions.md``: (u, v) in [0, 1]², v = 0 at the *bottom* row of the
texture tensor (row 0 is the top), texel centres at ((j + 0.5)/W, 1 − (i + 0.5)/H).
Outside [0, 1] the border texel is repeated.

Example:
    >>> import torch
    >>> tex = torch.arange(4.).view(1, 1, 2, 2)          # rows: [0, 1] (top), [2, 3]
    >>> uv = torch.tensor([[[[0.25, 0.75], [0.75, 0.25]]]])  # top-left, bottom-right centres
    >>> sample_texture(tex, uv).flatten().tolist()
    [0.0, 3.0]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["sample_texture", "uv_to_grid"]


def uv_to_grid(uv: torch.Tensor) -> torch.Tensor:
    """UV ``[..., 2]`` → ``grid_sample`` coordinates ``[..., 2]`` (x right, y down, in [−1, 1])."""
    return torch.stack([uv[..., 0] * 2 - 1, 1 - uv[..., 1] * 2], dim=-1)


def sample_texture(tex: torch.Tensor, uv: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Sample a texture at UV coordinates.

    Args:
        tex: ``[B, C, Ht, Wt]`` texture (any channels and value range); B may be 1 and
            broadcast over ``uv``'s batch.
        uv: ``[B, *S, 2]`` coordinates, for example ``[B, H, W, 2]`` from a G-buffer or
            ``[B, N, 2]`` for a gathered list of pixels.
        mode: ``"bilinear"`` or ``"nearest"``.

    Returns:
        ``[B, *S, C]`` (NHWC-style: channels last). Differentiable w.r.t. ``tex`` and ``uv``.
    """
    if tex.ndim != 4:
        raise ValueError(f"tex must be [B, C, H, W], got {tuple(tex.shape)}")
    if uv.ndim < 3 or uv.shape[-1] != 2:
        raise ValueError(f"uv must be [B, ..., 2], got {tuple(uv.shape)}")
    b = uv.shape[0]
    if tex.shape[0] not in (1, b):
        raise ValueError(f"tex batch {tex.shape[0]} does not match uv batch {b}")
    if tex.shape[0] == 1 and b > 1:
        tex = tex.expand(b, -1, -1, -1)
    spatial = uv.shape[1:-1]
    grid = uv_to_grid(uv.reshape(b, 1, -1, 2)).to(tex.dtype)
    out = F.grid_sample(tex, grid, mode=mode, padding_mode="border", align_corners=False)
    return out[:, :, 0].transpose(1, 2).reshape(b, *spatial, tex.shape[1])
