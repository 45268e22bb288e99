"""Image grids of the evaluation (Figure 7, contact sheets), written atomically as PNG.
Figure 5's loss curves are :func:`facerefl.export.plots.save_loss_plot`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from facerefl.export.images import encode_png
from facerefl.fsutil import atomic_write_bytes

__all__ = ["tile", "grid", "save_grid"]


def tile(image: torch.Tensor | None, size: int) -> np.ndarray:
    """``[C, H, W]`` sRGB in [0, 1] (C = 1 or 3) → ``[size, size, 3]`` float HWC, letterboxed
    on gray; ``None`` gives a dark placeholder (a failed input)."""
    out = np.full((size, size, 3), 0.5, np.float32)
    if image is None:
        out[:] = 0.15
        return out
    img = image.detach().float().cpu()
    if img.shape[0] == 1:
        img = img.expand(3, -1, -1)
    h, w = img.shape[-2:]
    s = size / max(h, w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    small = F.interpolate(img[None], size=(nh, nw), mode="bilinear", align_corners=False,
                          antialias=s < 1)[0].clamp(0, 1)
    y0, x0 = (size - nh) // 2, (size - nw) // 2
    out[y0:y0 + nh, x0:x0 + nw] = small.permute(1, 2, 0).numpy()
    return out


def grid(rows: Sequence[Sequence[torch.Tensor | None]], size: int = 160, gap: int = 4) -> np.ndarray:
    """Rows of images (each ``[C, H, W]`` sRGB or None) → one ``uint8`` ``[H, W, 3]`` sheet."""
    if not rows:
        raise ValueError("grid needs at least one row")
    ncol = max(len(r) for r in rows)
    h = len(rows) * size + (len(rows) + 1) * gap
    w = ncol * size + (ncol + 1) * gap
    sheet = np.ones((h, w, 3), np.float32)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            y, x = gap + i * (size + gap), gap + j * (size + gap)
            sheet[y:y + size, x:x + size] = tile(img, size)
    return (sheet * 255 + 0.5).astype(np.uint8)


def save_grid(path: str | os.PathLike, rows: Sequence[Sequence[torch.Tensor | None]],
              size: int = 160) -> Path:
    """Write :func:`grid` as a PNG atomically."""
    return atomic_write_bytes(path, encode_png(grid(rows, size)))
