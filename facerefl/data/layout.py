"""Where facial features lie in the template's UV layout, as soft masks.

Built from the template's landmark UVs and regions (:mod:`facerefl.geometry.template`):
polygons and Gaussian blobs drawn in UV, smoothed into [0, 1] weights. Everything is a
``[S, S]`` float32 array with row 0 at v = 1 (texture convention, docs/conventions.md).

Landmark numbers are mediapipe face-mesh vertex ids (the template's vertex order);
"left"/"right" are the subject's, so the subject's left eye has the larger u.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from facerefl.geometry.template import (
    Template,
    eyes_uv_coverage,
    load_template,
    region_uv_mask,
    skin_uv_mask,
    uv_coverage_mask,
)

#: Landmarks used to place features (mediapipe ids), per side where it matters.
EYE_OUTER = (33, 263)
EYE_INNER = (133, 362)
LID_UPPER = (159, 386)
LID_LOWER = (145, 374)
CHEEK = (50, 280)
ALAR = (129, 358)  # outer nose wing, where the nasolabial fold starts
NOSTRIL_EDGE = (98, 327)
MOUTH_CORNER = (61, 291)
SUBNASALE = 2
NOSE_TIP = 4
CHIN = 152
FOREHEAD_TOP = 10


@dataclass(frozen=True)
class FaceLayout:
    """Soft feature masks of one texture size ``S`` (all ``[S, S]`` float32 in [0, 1]).

    Attributes:
        size: S.
        points: ``[468, 2]`` float64 landmark positions in texel coordinates (x = column,
            y = row, texel centres at +0.5).
        coverage: texels covered by a template triangle (binary).
        skin: the skin mask of T's 4th channel (binary; eyes, brows, inner mouth excluded).
        lips, brows, eyes, nose, nose_tip, nostrils, cheeks, under_eye, eyelids, forehead,
        beard, mustache: soft masks.
        mouth: the line where the lips meet (inner lip contour), soft.
        lashes: a thin band along the upper rim of each eye opening, soft.
        eye_centers: ``[2, 2]`` texel (x, y) centre of the right and left eye openings.
        eye_radius: iris radius in texels.
    """

    size: int
    points: np.ndarray
    coverage: np.ndarray
    skin: np.ndarray
    lips: np.ndarray
    brows: np.ndarray
    eyes: np.ndarray
    nose: np.ndarray
    nose_tip: np.ndarray
    nostrils: np.ndarray
    cheeks: np.ndarray
    under_eye: np.ndarray
    eyelids: np.ndarray
    forehead: np.ndarray
    beard: np.ndarray
    mustache: np.ndarray
    mouth: np.ndarray
    lashes: np.ndarray
    eye_centers: np.ndarray
    eye_radius: float

    def pt(self, index: int) -> np.ndarray:
        """Texel (x, y) of landmark ``index``."""
        return self.points[index]


def _blur(mask: np.ndarray, sigma_px: float) -> np.ndarray:
    m = mask.astype(np.float32)
    if sigma_px <= 0.3:
        return m
    return cv2.GaussianBlur(m, (0, 0), sigma_px, borderType=cv2.BORDER_REPLICATE)


def _dilate(mask: np.ndarray, px: int) -> np.ndarray:
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.dilate(mask.astype(np.float32), k)


def _ellipse(size: int, centre, axes, angle_deg: float = 0.0) -> np.ndarray:
    """Filled ellipse (float32 {0, 1}) with centre and semi-axes in texels."""
    img = np.zeros((size, size), np.float32)
    shift = 4
    c = tuple(int(round(v * (1 << shift))) for v in centre)
    a = tuple(max(1, int(round(v * (1 << shift)))) for v in axes)
    cv2.ellipse(img, c, a, angle_deg, 0, 360, 1.0, -1, cv2.LINE_AA, shift)
    return img


def gaussian_blob(size: int, centre, sigma_px) -> np.ndarray:
    """Isotropic or axis-aligned Gaussian ``exp(-d^2/2 sigma^2)`` (float32 ``[S, S]``)."""
    sx, sy = (sigma_px, sigma_px) if np.isscalar(sigma_px) else sigma_px
    x = (np.arange(size, dtype=np.float32) + 0.5 - centre[0]) / sx
    y = (np.arange(size, dtype=np.float32) + 0.5 - centre[1]) / sy
    return np.exp(-0.5 * (y[:, None] ** 2 + x[None, :] ** 2)).astype(np.float32)


def _polygon(size: int, pts: np.ndarray) -> np.ndarray:
    img = np.zeros((size, size), np.float32)
    shift = 4
    cv2.fillPoly(img, [np.round((pts - 0.5) * (1 << shift)).astype(np.int32)], 1.0,
                 cv2.LINE_AA, shift)
    return img


def build_layout(template: Template, size: int) -> FaceLayout:
    """Compute every feature mask of :class:`FaceLayout` at texture size ``size``."""
    s = float(size)
    uv = template.uvs.numpy().astype(np.float64)
    pts = np.stack([uv[:, 0] * s, (1.0 - uv[:, 1]) * s], axis=1)
    unit = s / 256.0  # texels per "reference texel" of a 256 map

    def region(name: str) -> np.ndarray:
        return region_uv_mask(template, template.region(name), size).astype(np.float32)

    coverage = uv_coverage_mask(template, size).astype(np.float32)
    oval = region("face_oval")
    lips_outer = region("lips_outer")
    mouth = _blur(np.maximum(region("lips_inner"), _dilate(region("lips_inner"), 1)), 0.6 * unit)
    lips = _blur(lips_outer, 0.8 * unit)
    brows = _blur(np.maximum(region("left_brow"), region("right_brow")), 1.2 * unit)
    eyes = np.maximum(region("left_eye"), region("right_eye"))
    nose = _blur(region("nose"), 3.0 * unit)

    eye_centers = np.stack([(pts[o] + pts[i]) / 2 for o, i in zip(EYE_OUTER, EYE_INNER)])
    eye_h = np.mean([abs(pts[lo][1] - pts[up][1]) for up, lo in zip(LID_UPPER, LID_LOWER)])
    eye_w = np.mean([np.linalg.norm(pts[o] - pts[i]) for o, i in zip(EYE_OUTER, EYE_INNER)])

    under, lids, cheeks, nostrils = (np.zeros((size, size), np.float32) for _ in range(4))
    for k in range(2):
        c = eye_centers[k]
        under = np.maximum(under, _ellipse(size, (c[0], c[1] + 1.0 * eye_h), (0.55 * eye_w, 0.8 * eye_h)))
        lids = np.maximum(lids, _ellipse(size, (c[0], c[1] - 0.6 * eye_h), (0.6 * eye_w, 1.2 * eye_h)))
        cheeks = np.maximum(cheeks, gaussian_blob(size, pts[CHEEK[k]], 0.09 * s))
        mid = (pts[NOSTRIL_EDGE[k]] * 0.55 + pts[SUBNASALE] * 0.45)
        nostrils = np.maximum(nostrils, _ellipse(size, mid, (0.022 * s, 0.008 * s), 15.0 * (1 - 2 * k)))
    rim = _dilate(eyes, max(1, round(1.2 * unit))) * (1 - eyes)
    above = (np.arange(size)[:, None] + 0.5) < eye_centers[:, 1].mean()
    lashes = _blur(rim * above, 0.5 * unit)
    under = _blur(under * (1 - eyes), 2.5 * unit) * (1 - eyes)
    lids = _blur(lids * (1 - eyes), 1.5 * unit) * (1 - eyes) * (1 - brows)
    nostrils = _blur(nostrils, 0.8 * unit)

    yy = (np.arange(size) + 0.5)[:, None] / s  # row in [0, 1] = 1 - v
    xx = (np.arange(size) + 0.5)[None, :] / s
    brow_top = 1.0 - max(uv[list(template.region("left_brow").indices), 1].max(),
                         uv[list(template.region("right_brow").indices), 1].max())
    forehead = _blur(oval * (yy < brow_top - 0.01), 4.0 * unit)
    # Beard: below a line that rises from under the mouth corners to the sideburns.
    v = 1.0 - yy
    beard_line = 0.30 + 0.24 * np.clip(np.abs(xx - 0.5) / 0.5, 0, 1) ** 2
    lip_zone = _blur(lips_outer, 3.0 * unit) > 0.05
    beard = _blur(oval * (v < beard_line) * (~lip_zone), 3.0 * unit)
    lip_top = 1.0 - pts[0][1] / s  # landmark 0: top of the upper lip
    sub_v = 1.0 - pts[SUBNASALE][1] / s
    mus = (np.abs(xx - 0.5) < 0.13) & (v > lip_top - 0.005) & (v < sub_v - 0.008)
    mustache = _blur(mus * (~lip_zone), 2.0 * unit)
    nose_tip = gaussian_blob(size, pts[NOSE_TIP], 0.035 * s)

    return FaceLayout(
        size=size, points=pts, coverage=coverage,
        skin=skin_uv_mask(template, size).astype(np.float32),
        lips=lips, brows=brows, eyes=eyes, nose=nose, nose_tip=nose_tip, nostrils=nostrils,
        cheeks=cheeks, under_eye=under, eyelids=lids, forehead=forehead, beard=beard,
        mustache=mustache, mouth=mouth, lashes=lashes, eye_centers=eye_centers, eye_radius=0.42 * eye_h,
    )


@functools.lru_cache(maxsize=6)
def face_layout(size: int) -> FaceLayout:
    """:func:`build_layout` of the cached template (memoised per size; do not mutate)."""
    return build_layout(load_template(), int(size))


def eyes_coverage(size: int) -> np.ndarray:
    """The eye openings' area coverage ``[size, size]`` (float32 in [0, 1];
    :func:`~facerefl.geometry.template.eyes_uv_coverage`): the texels to which the generator
    gives a specular intensity of their own, which the skin's shine does not scale
    (:mod:`facerefl.data.procedural`)."""
    return eyes_uv_coverage(size)
