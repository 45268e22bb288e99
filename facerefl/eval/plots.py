"""PNG figures of the evaluation: loss curves (Figure 5), image grids (Figure 7, contact
sheets). Written atomically; matplotlib runs on the non-interactive Agg backend."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from facerefl.export.images import encode_png
from facerefl.fsutil import atomic_write_bytes

__all__ = ["loss_curves_png", "save_loss_curves", "tile", "grid", "save_grid"]


def loss_curves_png(curves: dict[str, Sequence[float]], title: str, dpi: int = 100) -> bytes:
    """PNG bytes: one loss-vs-iteration curve per input (log-scaled loss axis)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=dpi)
    try:
        for name, losses in curves.items():
            ax.plot(range(len(losses)), list(losses), lw=1.2, label=name)
        ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_ylabel("reconstruction loss (MSE, sRGB)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if 0 < len(curves) <= 12:
            ax.legend(fontsize=7, ncol=2)
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    return buf.getvalue()


def save_loss_curves(path: str | os.PathLike, curves: dict[str, Sequence[float]], title: str) -> Path:
    return atomic_write_bytes(path, loss_curves_png(curves, title))


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
