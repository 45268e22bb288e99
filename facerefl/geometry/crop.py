"""Cropping a photo to its face, with the landmarks and camera carried along.

Fitting only looks at the face, so the geometry stage works on a crop around it (at most
``max_side`` pixels): a 12-megapixel phone photo then costs what a portrait does, while
the camera keeps the full photo's field of view (so perspective is unchanged). A
:class:`Crop` records where the working image lies in the loaded photo, for pasting
results back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from facerefl.geometry.landmarks import Landmarks
from facerefl.render.raster import Camera

__all__ = ["Crop", "face_box", "crop_to_face"]


@dataclass(frozen=True)
class Crop:
    """Placement of the working image in the loaded photo.

    A working-image pixel position (x, y) (x right, y down, pixel centres at +0.5) is the
    photo position ``(x0 + x / scale_x, y0 + y / scale_y)``.

    Attributes:
        x0, y0: top-left corner of the crop, photo pixels.
        width, height: crop size in photo pixels (before scaling).
        scale_x, scale_y: working pixels per photo pixel (≤ 1).
        photo_width, photo_height: size of the loaded photo.
    """

    x0: int
    y0: int
    width: int
    height: int
    scale_x: float
    scale_y: float
    photo_width: int
    photo_height: int

    @staticmethod
    def identity(height: int, width: int) -> "Crop":
        return Crop(0, 0, width, height, 1.0, 1.0, width, height)


def face_box(landmarks: Landmarks, margin: float) -> tuple[int, int, int, int]:
    """Square box ``(x0, y0, x1, y1)`` (integer pixels, clipped to the image) centred on
    the face, its side the face's larger extent times ``1 + 2·margin``."""
    bx0, by0, bx1, by1 = landmarks.bbox()
    h, w = landmarks.image_size
    side = max(bx1 - bx0, by1 - by0) * (1.0 + 2.0 * margin)
    cx, cy = 0.5 * (bx0 + bx1), 0.5 * (by0 + by1)
    x0, y0 = max(0, math.floor(cx - side / 2)), max(0, math.floor(cy - side / 2))
    x1, y1 = min(w, math.ceil(cx + side / 2)), min(h, math.ceil(cy + side / 2))
    return x0, y0, x1, y1


def crop_to_face(photo: torch.Tensor, landmarks: Landmarks, camera: Camera, margin: float,
                 max_side: int) -> tuple[torch.Tensor, Landmarks, Camera, Crop]:
    """Crop ``photo`` around the face and shrink the crop to at most ``max_side``.

    Args:
        photo: ``[3, H, W]`` sRGB in [0, 1].
        landmarks: found in ``photo``.
        camera: ``photo``'s camera.
        margin: extra room on each side, as a fraction of the face size.
        max_side: longest side of the result (crops are never enlarged).

    Returns:
        the cropped photo ``[3, h, w]``, its landmarks (pixels of the crop; mediapipe depth
        scaled like x), its camera (same field of view, shifted principal point) and the
        :class:`Crop`.
    """
    if margin < 0:
        raise ValueError(f"crop margin must be ≥ 0, got {margin}")
    h_full, w_full = photo.shape[1:]
    x0, y0, x1, y1 = face_box(landmarks, margin)
    crop = photo[:, y0:y1, x0:x1]
    ch, cw = crop.shape[1:]
    s = min(1.0, max_side / max(ch, cw))
    nh, nw = max(1, round(ch * s)), max(1, round(cw * s))
    if (nh, nw) != (ch, cw):
        crop = F.interpolate(crop[None], size=(nh, nw), mode="bilinear", antialias=True,
                             align_corners=False)[0].clamp(0.0, 1.0)
    sx, sy = nw / cw, nh / ch
    p = landmarks.points
    pts = torch.stack([(p[:, 0] - x0) * sx, (p[:, 1] - y0) * sy, p[:, 2] * sx], dim=1)
    cam = Camera(camera.fx * sx, camera.fy * sy, (camera.cx - x0) * sx, (camera.cy - y0) * sy,
                 nw, nh)
    info = Crop(x0, y0, cw, ch, sx, sy, w_full, h_full)
    return crop.contiguous(), Landmarks(pts, (nh, nw), landmarks.num_faces), cam, info
