"""Effects painted on the face's reflectance maps in UV: stubble, makeup, teeth, hair.

Stubble, makeup and teeth are part of the surface, so they go into the target maps; hair
over the forehead and temples goes only into the copy of the maps the photo is rendered
with (see :mod:`facerefl.data.effects`). Every function takes the maps of one face at
one size ``S`` (UV, row 0 at v = 1, as :mod:`facerefl.data.procedural` makes them), its
:class:`~facerefl.data.procedural.ReflectanceParams`, the :class:`FaceLayout` of size
``S`` and a NumPy generator, and returns new maps (the input is not modified).
Relief is added to the normals as the gradient of a height field in reference-texel
units, as :mod:`facerefl.data.procedural` builds them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from facerefl.data.effects import HairSettings, MakeupSettings, StubbleSettings, TeethSettings
from facerefl.data.layout import EYE_OUTER, FaceLayout
from facerefl.data.procedural import (
    Reflectance,
    ReflectanceParams,
    _bezier,
    _curve,
    _hair_colour,
    strands,
    value_noise,
)

#: Landmarks of the mouth (mediapipe ids): upper lip top, upper lip inner, lower lip
#: inner, lower lip bottom, inner mouth corners.
_LIP_TOP, _LIP_UP_IN, _LIP_LO_IN, _LIP_BOTTOM = 0, 13, 14, 17
_MOUTH_INNER = (78, 308)
#: Top of the brows (mediapipe ids), as in :mod:`facerefl.data.procedural`.
_BROW_TOP = (70, 300, 105, 334)

#: Makeup palettes, linear RGB.
LIPSTICKS = np.array([
    [0.42, 0.02, 0.03],  # red
    [0.55, 0.12, 0.18],  # pink
    [0.33, 0.14, 0.10],  # nude
    [0.16, 0.02, 0.06],  # berry / plum
    [0.05, 0.015, 0.015],  # very dark
    [0.60, 0.15, 0.07],  # coral
    [0.12, 0.04, 0.025],  # brown
], np.float32)
EYESHADOWS = np.array([
    [0.14, 0.07, 0.04],  # brown
    [0.20, 0.15, 0.12],  # taupe
    [0.45, 0.18, 0.22],  # pink
    [0.13, 0.05, 0.18],  # purple
    [0.07, 0.11, 0.28],  # blue
    [0.025, 0.025, 0.03],  # smoky black
    [0.42, 0.28, 0.09],  # gold
    [0.07, 0.16, 0.07],  # green
], np.float32)
BLUSHES = np.array([
    [0.62, 0.22, 0.27],  # pink
    [0.70, 0.28, 0.17],  # coral
    [0.36, 0.10, 0.07],  # red-brown
], np.float32)
_LINERS = np.array([[0.012, 0.010, 0.010], [0.04, 0.02, 0.012]], np.float32)


@dataclass
class SurfaceMaps:
    """Working copy of one face's maps (NumPy, channels last, float32).

    Attributes:
        albedo: ``[S, S, 3]`` linear RGB in [0, 1].
        specular: ``[S, S]`` t_r in [0, 1].
        normal: ``[S, S, 3]`` unit tangent-space normals.
    """

    albedo: np.ndarray
    specular: np.ndarray
    normal: np.ndarray

    @classmethod
    def of(cls, r: Reflectance) -> "SurfaceMaps":
        """Copy of reflectance ``r`` (all three maps must have the same size)."""
        if not r.albedo.shape[-1] == r.specular.shape[-1] == r.normal.shape[-1]:
            raise ValueError(f"maps must share one size, got {tuple(r.albedo.shape)}, "
                             f"{tuple(r.specular.shape)}, {tuple(r.normal.shape)}")
        return cls(r.albedo.permute(1, 2, 0).numpy().copy(), r.specular[0].numpy().copy(),
                   r.normal.permute(1, 2, 0).numpy().copy())

    def reflectance(self) -> Reflectance:
        """The maps as a :class:`Reflectance` (albedo and specular clipped to [0, 1])."""
        def chw(a):
            return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1).astype(np.float32)))
        n = self.normal / np.linalg.norm(self.normal, axis=-1, keepdims=True)
        return Reflectance(albedo=chw(np.clip(self.albedo, 0.0, 1.0)),
                           specular=torch.from_numpy(np.clip(self.specular, 0, 1)[None].astype(np.float32)),
                           normal=chw(n))

    def add_relief(self, h: np.ndarray, unit: float) -> None:
        """Tilt the normals by the gradient of height field ``h`` (reference texels)."""
        d_row, d_col = np.gradient(h.astype(np.float32))
        n = self.normal.copy()
        n[..., 0] += -d_col * unit * n[..., 2]
        n[..., 1] += d_row * unit * n[..., 2]
        self.normal = n / np.linalg.norm(n, axis=-1, keepdims=True)

    def paint(self, colour: np.ndarray, alpha: np.ndarray) -> None:
        """Cover the albedo with ``colour`` ``[3]`` or ``[S, S, 3]`` at opacity ``alpha [S, S]``."""
        a = alpha[..., None]
        self.albedo = self.albedo * (1 - a) + colour * a


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Texel-centre column and row coordinates, ``[1, S]`` and ``[S, 1]``."""
    c = np.arange(size, dtype=np.float32) + 0.5
    return c[None, :], c[:, None]


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(x.astype(np.float32), (0, 0), sigma) if sigma > 0.3 else x


# ---------------------------------------------------------------------------- stubble


def add_stubble(m: SurfaceMaps, p: ReflectanceParams, lay: FaceLayout,
                rng: np.random.Generator, s: StubbleSettings) -> SurfaceMaps:
    """Fine dark hair dots and a faint shadow over the beard and moustache zone."""
    if p.beard > 0.5:  # a full beard already covers the zone
        return m
    size, unit = lay.size, lay.size / 256.0
    zone = np.maximum(lay.beard, lay.mustache)
    density, strength = rng.uniform(*s.density), rng.uniform(*s.strength)
    shadow = rng.uniform(*s.shadow)
    hairs = (rng.random((size, size)) < density * zone).astype(np.float32)
    op = hairs * strength * rng.uniform(0.6, 1.0, (size, size)).astype(np.float32)
    out = SurfaceMaps(m.albedo * (1 - shadow * zone[..., None] * np.array([1.0, 0.95, 0.8], np.float32)),
                      m.specular * (1 - 0.5 * op), m.normal)
    out.paint(_hair_colour(max(p.hair_melanin, 0.6)).astype(np.float32), op)
    out.add_relief(0.3 * op, unit)
    return out


# ----------------------------------------------------------------------------- makeup


def _masked_blur(x: np.ndarray, w: np.ndarray, sigma: float) -> np.ndarray:
    """Blur of ``x [S, S, C]`` that only averages texels of weight ``w [S, S]``."""
    num = cv2.GaussianBlur((x * w[..., None]).astype(np.float32), (0, 0), sigma)
    den = cv2.GaussianBlur(w.astype(np.float32), (0, 0), sigma)[..., None]
    return num / np.maximum(den, 1e-4)


def add_makeup(m: SurfaceMaps, p: ReflectanceParams, lay: FaceLayout,
               rng: np.random.Generator, s: MakeupSettings) -> SurfaceMaps:
    """Foundation, blush, eyeshadow, eyeliner and lipstick, each with its own probability."""
    size, unit = lay.size, lay.size / 256.0
    items = {k: rng.random() < getattr(s, k)
             for k in ("foundation", "blush", "eyeshadow", "eyeliner", "lipstick")}
    out = SurfaceMaps(m.albedo.copy(), m.specular.copy(), m.normal)
    skin = lay.skin * (1 - lay.brows) * (1 - lay.lips) * (1 - lay.eyes) * (1 - lay.lashes)
    if p.beard > 0:
        skin = skin * (1 - np.maximum(lay.beard, lay.mustache))
    if items["foundation"]:
        a = rng.uniform(*s.opacity) * skin
        even = _masked_blur(out.albedo, skin, 6.0 * unit)
        even *= np.exp(rng.normal(0.0, 0.05, 3)).astype(np.float32) * rng.uniform(0.92, 1.08)
        out.paint(np.clip(even, 0, 1), a)
        out.specular *= 1 - 0.35 * a
    if items["blush"]:
        a = 0.45 * rng.uniform(*s.opacity) * lay.cheeks * skin
        out.paint(BLUSHES[rng.integers(len(BLUSHES))], a)
    if items["eyeshadow"]:
        a = rng.uniform(*s.opacity) * lay.eyelids
        out.paint(EYESHADOWS[rng.integers(len(EYESHADOWS))], a)
        out.specular = out.specular * (1 - a) + rng.uniform(0.2, 0.6) * a
    if items["eyeliner"]:
        line = np.clip(cv2.dilate(lay.lashes, np.ones((3, 3), np.uint8),
                                  iterations=max(1, round(rng.uniform(0.5, 2.0) * unit))), 0, 1)
        if rng.random() < 0.5:  # a wing at the outer corner
            ang, length = math.radians(rng.uniform(15, 40)), rng.uniform(4, 10) * unit
            for k, side in ((0, -1.0), (1, 1.0)):
                o = lay.points[EYE_OUTER[k]]
                seg = np.stack([o, o + length * np.array([side * math.cos(ang), -math.sin(ang)])])
                line = np.maximum(line, _curve(size, seg, 0.6 * unit))
        out.paint(_LINERS[rng.integers(len(_LINERS))], rng.uniform(0.6, 1.0) * line * (1 - lay.eyes))
    if items["lipstick"]:
        colour = LIPSTICKS[rng.integers(len(LIPSTICKS))] * rng.uniform(0.7, 1.2)
        a = rng.uniform(*s.opacity) * lay.lips * (1 - 0.6 * lay.mouth)
        out.paint(np.clip(colour, 0, 1).astype(np.float32), a)
        gloss = rng.uniform(0.15, 0.9)  # matte .. glossy
        out.specular = out.specular * (1 - a) + gloss * a
    return out


# ------------------------------------------------------------------------------ teeth


def teeth_mask(lay: FaceLayout, opening: float, width: float) -> tuple[np.ndarray, ...]:
    """Where teeth show between the lips: ``(mask, x, y)``, each ``[S, S]``.

    ``opening`` is the teeth height over the lips' height, ``width`` the teeth width over
    the inner mouth width; ``x`` is the column offset from the mouth centre over the
    half-width, ``y`` the row offset in texels (down positive).
    """
    pts, unit = lay.points, lay.size / 256.0
    centre = (pts[_LIP_UP_IN] + pts[_LIP_LO_IN]) / 2
    half_w = 0.5 * width * abs(pts[_MOUTH_INNER[1]][0] - pts[_MOUTH_INNER[0]][0])
    h = opening * (pts[_LIP_BOTTOM][1] - pts[_LIP_TOP][1])
    cols, rows = _grid(lay.size)
    x = (cols - centre[0]) / half_w
    y = rows - centre[1]
    prof = np.sqrt(np.clip(1 - x * x, 0, 1))
    h_up, h_lo = 0.6 * h * prof, 0.4 * h * prof
    inside = (y > -h_up) & (y < h_lo) & (np.abs(x) < 1)
    return _blur(inside.astype(np.float32), 0.4 * unit), np.broadcast_to(x, inside.shape), \
        np.broadcast_to(y, inside.shape)


def add_teeth(m: SurfaceMaps, p: ReflectanceParams, lay: FaceLayout,
              rng: np.random.Generator, s: TeethSettings) -> SurfaceMaps:
    """Upper (and some lower) teeth between parted lips, darker towards the mouth corners."""
    unit = lay.size / 256.0
    mask, x, y = teeth_mask(lay, rng.uniform(*s.opening), rng.uniform(0.7, 0.95))
    # gaps between teeth: incisors wide, back teeth narrow (fractions of the half-width)
    edges = np.cumsum([0.0, 0.2, 0.16, 0.14, 0.13, 0.12, 0.12]) * rng.uniform(0.9, 1.1)
    gap = np.zeros_like(mask)
    half_w = 1.0 / max(float(np.abs(np.diff(x[0, :2]))[0]), 1e-6)  # texels per unit x
    for e in edges:
        gap = np.maximum(gap, np.exp(-0.5 * ((np.abs(x) - e) * half_w / (0.45 * unit)) ** 2))
    bite = np.exp(-0.5 * (y / (0.5 * unit)) ** 2)  # between upper and lower teeth
    tint = np.array([1.0, 0.93, 0.78], np.float32) * np.exp(rng.normal(0, 0.03, 3)).astype(np.float32)
    shade = rng.uniform(*s.shade) * (1 - 0.9 * np.clip(np.abs(x), 0, 1) ** 2.5)
    colour = (shade * (1 - 0.5 * gap) * (1 - 0.6 * bite))[..., None] * tint
    out = SurfaceMaps(m.albedo.copy(), m.specular * (1 - mask) + 0.6 * mask, m.normal)
    out.paint(colour.astype(np.float32), mask)
    out.add_relief(-0.4 * mask * np.maximum(gap, bite), unit)
    return out


# ------------------------------------------------------------------------------- hair


def hair_alpha(p: ReflectanceParams, lay: FaceLayout, rng: np.random.Generator,
               s: HairSettings) -> tuple[np.ndarray, np.ndarray]:
    """Coverage ``[S, S]`` in [0, 1] of hair over the forehead and temples, and a strand
    brightness field ``[S, S]`` (about 1) for its colour."""
    size, unit = lay.size, lay.size / 256.0
    pts = lay.points
    cols, rows = _grid(size)
    cx = pts[10][0]
    top = pts[10][1] - 4 * unit  # the template's forehead edge, a little above landmark 10
    brow = min(pts[i][1] for i in _BROW_TOP)
    eye_row = float(lay.eye_centers[:, 1].mean())
    alpha = np.zeros((size, size), np.float32)
    tone = 1.0 + 0.3 * value_noise(rng, size, max(4, size // 4))
    if rng.random() < s.fringe:
        depth = rng.uniform(*s.fringe_depth)
        tilt = rng.uniform(-0.5, 0.5)  # swept sideways
        ragged = value_noise(rng, size, 16)[size // 2][None, :] * 3.0 * unit
        edge = top + depth * (brow - top) + tilt * (cols - cx) + ragged
        fine = strands(rng, size, 5.0 * unit, 0.5 * unit, 90.0 + 40.0 * tilt, 0.8)
        body = np.clip((edge - rows) / (1.5 * unit), 0, 1)
        tips = np.clip((edge + 5 * unit - rows) / (5 * unit), 0, 1) * (rows > edge) * fine
        alpha = np.maximum(alpha, np.maximum(body * np.clip(0.6 + 0.6 * fine, 0, 1), tips))
    if rng.random() < s.temples:
        x0 = rng.uniform(0.26, 0.34) * size
        fine = strands(rng, size, 6.0 * unit, 0.5 * unit, 90.0 + rng.uniform(-15, 15), 0.7)
        side = np.clip((np.abs(cols - cx) - x0) / (4 * unit), 0, 1)
        down = np.clip((eye_row + rng.uniform(-10, 25) * unit - rows) / (6 * unit), 0, 1)
        alpha = np.maximum(alpha, side * down * np.clip(0.4 + 0.8 * fine, 0, 1))
    loose = np.zeros((size, size), np.float32)
    for _ in range(int(rng.integers(s.strands[0], s.strands[1] + 1))):
        x_a = cx + rng.uniform(-0.3, 0.3) * size
        end = np.array([x_a + rng.uniform(-25, 25) * unit, rng.uniform(top, eye_row)])
        start = np.array([x_a, top - 2 * unit])
        mid = (start + end) / 2 + rng.uniform(-8, 8, 2) * unit
        curve = _bezier(start, mid, end, 16)
        img = np.zeros_like(loose)
        cv2.polylines(img, [np.round(curve * 16).astype(np.int32)], False, 1.0, 1, cv2.LINE_AA, 4)
        loose = np.maximum(loose, img * rng.uniform(0.5, 1.0))
    return np.clip(np.maximum(alpha, loose), 0, 1), tone


def add_hair(m: SurfaceMaps, p: ReflectanceParams, lay: FaceLayout,
             rng: np.random.Generator, s: HairSettings) -> SurfaceMaps:
    """Hair lying over the forehead and temples, with a soft contact shadow under it."""
    unit = lay.size / 256.0
    melanin = p.hair_melanin if rng.random() < 0.85 else rng.uniform(0.0, 1.0)  # dyed
    alpha, tone = hair_alpha(p, lay, rng, s)
    shifted = np.roll(alpha, max(1, round(2 * unit)), axis=0)
    shadow = 0.5 * _blur(shifted, 1.5 * unit) * (1 - alpha)
    out = SurfaceMaps(m.albedo * (1 - shadow[..., None]), m.specular * (1 - alpha) + 0.15 * alpha,
                      m.normal)
    hair = _hair_colour(melanin).astype(np.float32)
    out.paint(np.clip(hair * tone[..., None], 0, 1), alpha)
    out.add_relief(0.5 * alpha * tone, unit)
    return out
