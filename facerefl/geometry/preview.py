"""Pictures of a :class:`~facerefl.geometry.result.FaceGeometry` for people to look at.

All functions return ``[H, W, 3]`` (or ``[H, W]``) uint8 arrays in RGB order; writing
them is :func:`write_png` (atomic, :func:`facerefl.fsutil.atomic_write`).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from facerefl.fsutil import atomic_write_bytes, atomic_write_text
from facerefl.geometry.photo import to_uint8_hwc

__all__ = ["mesh_overlay", "texture_rgb", "gray", "bent_normal_rgb", "sh_tiles", "write_png",
           "write_text"]


def write_png(path: Path, image: np.ndarray) -> None:
    """Write an RGB ``[H, W, 3]`` or gray ``[H, W]`` uint8 image as PNG, atomically."""
    img = image[..., ::-1] if image.ndim == 3 else image
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img))
    if not ok:
        raise OSError(f"could not encode {path}")
    atomic_write_bytes(path, buf.tobytes())


def write_text(path: Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path``, atomically."""
    atomic_write_text(path, text)


def texture_rgb(texture: torch.Tensor) -> np.ndarray:
    """``[1 or 0, C≥3, R, R]`` sRGB texture → ``[R, R, 3]`` uint8."""
    t = texture.reshape(-1, *texture.shape[-2:])[:3]
    return to_uint8_hwc(t)


def gray(channel: torch.Tensor) -> np.ndarray:
    """A single channel ``[..., H, W]`` in [0, 1] → ``[H, W]`` uint8."""
    c = channel.reshape(channel.shape[-2:]).detach().cpu().float().clamp(0, 1).numpy()
    return (c * 255.0 + 0.5).astype(np.uint8)


def bent_normal_rgb(bent: torch.Tensor) -> np.ndarray:
    """Unit tangent-space vectors ``[..., 3, R, R]`` → ``(n + 1)/2`` as ``[R, R, 3]`` uint8."""
    b = bent.reshape(3, *bent.shape[-2:])
    return to_uint8_hwc((b + 1.0) * 0.5)


def sh_tiles(coeffs: torch.Tensor, tile: int = 256) -> np.ndarray:
    """9 coefficient maps ``[..., 9, R, R]`` → a 3×3 grid, each map scaled by its own
    largest magnitude and colour-mapped blue (−) / white (0) / red (+)."""
    c = coeffs.reshape(9, *coeffs.shape[-2:]).detach().cpu().float().numpy()
    tiles = []
    for k in range(9):
        m = c[k] / max(float(np.abs(c[k]).max()), 1e-8)
        pos, neg = np.clip(m, 0, 1), np.clip(-m, 0, 1)
        rgb = np.stack([1 - neg, 1 - pos - neg, 1 - pos], -1).clip(0, 1)
        tiles.append(cv2.resize((rgb * 255 + 0.5).astype(np.uint8), (tile, tile),
                                interpolation=cv2.INTER_AREA))
    rows = [np.concatenate(tiles[i:i + 3], 1) for i in (0, 3, 6)]
    return np.concatenate(rows, 0)


def mesh_overlay(photo: torch.Tensor, points: torch.Tensor, faces: torch.Tensor,
                 size: int = 1024) -> np.ndarray:
    """The mesh's edges drawn over the photo, cropped to the face and enlarged.

    Args:
        photo: ``[3, H, W]`` sRGB in [0, 1].
        points: ``[V, 2]`` pixel positions of the mesh vertices (x right, y down).
        faces: ``[F, 3]`` int64 triangles.
        size: longer side of the result in pixels.

    Returns:
        ``[h, w, 3]`` uint8: the crop around the face (with a margin of 25 %) scaled so
        its longer side is ``size``, with green edges and red vertices.
    """
    img = to_uint8_hwc(photo)
    p = points[:, :2].detach().cpu().double().numpy()
    x0, y0 = p.min(0)
    x1, y1 = p.max(0)
    mx, my = 0.25 * (x1 - x0), 0.25 * (y1 - y0)
    h, w = img.shape[:2]
    cx0, cy0 = int(max(0, x0 - mx)), int(max(0, y0 - my))
    cx1, cy1 = int(min(w, x1 + mx + 1)), int(min(h, y1 + my + 1))
    crop = img[cy0:cy1, cx0:cx1]
    s = size / max(crop.shape[:2])
    crop = cv2.resize(crop, (round(crop.shape[1] * s), round(crop.shape[0] * s)),
                      interpolation=cv2.INTER_CUBIC)
    # Pixel centres at +0.5: the crop pixel grid starts at (cx0, cy0).
    q = (p - [cx0, cy0]) * s - 0.5  # cv2 draws with pixel centres on integers
    shift = 4
    qi = np.round(q * (1 << shift)).astype(np.int32)
    f = faces.detach().cpu().numpy()
    polys = [qi[t] for t in f]
    out = np.ascontiguousarray(crop)
    cv2.polylines(out, polys, True, (40, 220, 60), 1, cv2.LINE_AA, shift)
    for x, y in qi:
        cv2.circle(out, (int(x), int(y)), 2 << shift, (230, 40, 40), -1, cv2.LINE_AA, shift)
    return out
