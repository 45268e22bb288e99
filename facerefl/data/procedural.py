"""Procedural facial reflectance (albedo, specular intensity, tangent normals) in UV.

One face is described by a :class:`ReflectanceParams` (skin tone, blood, hair colour,
feature strengths and a noise seed) drawn by :func:`sample_params`;
:func:`synthesize` turns it into maps at one "master" size, deterministically, and
:func:`resize_reflectance` brings them to the sizes a preset needs (so that all maps of
one example show the same face).

Albedo uses the melanin/haemoglobin model of :mod:`facerefl.data.skin` per texel, with
features placed by :mod:`facerefl.data.layout`; specular intensity t_r and a height field
(pores, forehead lines, crow's feet, under-eye lines, nasolabial folds, lip lines, hair)
are built on the same layout, and the height field's gradient gives the tangent-space
normals (x along +u, y along +v, z out of the surface; "OpenGL" green-up).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from facerefl.data.layout import (
    ALAR,
    EYE_OUTER,
    MOUTH_CORNER,
    FaceLayout,
    face_layout,
    gaussian_blob,
)
from facerefl.data.skin import melanin_for_ita, skin_albedo

#: Range of the target skin ITA (degrees) sampled uniformly: covers all six categories.
ITA_RANGE = (-48.0, 80.0)

#: Hair albedo (linear RGB) at hair melanin 0 (blond) and 1 (black).
_HAIR_LIGHT = np.array([0.42, 0.28, 0.14])
_HAIR_DARK = np.array([0.012, 0.010, 0.009])

_IRIS_COLOURS = np.array([
    [0.10, 0.05, 0.02],  # dark brown
    [0.20, 0.11, 0.04],  # brown
    [0.15, 0.16, 0.07],  # hazel / green
    [0.10, 0.16, 0.25],  # blue
    [0.13, 0.14, 0.15],  # grey
])


@dataclass(frozen=True)
class ReflectanceParams:
    """Everything that defines one synthetic face's reflectance.

    Attributes:
        ita: target ITA of the base skin, degrees (see :mod:`facerefl.data.skin`).
        blood: base dermal haemoglobin depth.
        blush: extra haemoglobin on the cheeks.
        lip_blood: extra haemoglobin in the lips.
        lip_melanin: melanin multiplier in the lips (darker lips on darker skin).
        under_eye: strength of the darker, cooler under-eye skin, [0, 1].
        mottling: amplitude of low-frequency melanin variation.
        hair_melanin: 0 (blond) .. 1 (black), colour of brows and beard.
        brow_density: fraction of brow texels covered by hair, [0, 1].
        beard: 0 none, up to ~0.5 stubble, up to 1 full beard.
        freckles: number of freckles.
        moles: number of moles.
        iris: index into the iris colour table.
        shine: overall specular scale.
        pores: pore relief strength.
        wrinkles: forehead lines / crow's feet / under-eye lines strength.
        folds: nasolabial fold depth.
        noise_seed: seed of every noise field.
    """

    ita: float
    blood: float
    blush: float
    lip_blood: float
    lip_melanin: float
    under_eye: float
    mottling: float
    hair_melanin: float
    brow_density: float
    beard: float
    freckles: int
    moles: int
    iris: int
    shine: float
    pores: float
    wrinkles: float
    folds: float
    noise_seed: int


@dataclass(frozen=True)
class Reflectance:
    """Reflectance maps of one face (UV space, row 0 at v = 1).

    Attributes:
        albedo: ``[3, H, W]`` linear RGB in [0, 1].
        specular: ``[1, Hs, Ws]`` specular intensity t_r in [0, 1].
        normal: ``[3, Hs, Ws]`` tangent-space unit normals.
    """

    albedo: torch.Tensor
    specular: torch.Tensor
    normal: torch.Tensor


def sample_params(rng: np.random.Generator) -> ReflectanceParams:
    """Draw one face's parameters (deterministic given ``rng``'s state)."""
    ita = float(rng.uniform(*ITA_RANGE))
    dark = float(np.clip((40.0 - ita) / 100.0, 0.0, 1.0))  # 0 very light .. 1 dark
    male = rng.random() < 0.5
    beard = 0.0
    if male and rng.random() < 0.6:
        beard = float(rng.uniform(0.15, 0.5) if rng.random() < 0.6 else rng.uniform(0.5, 1.0))
    hair = float(np.clip(rng.beta(2.0, 1.2) + 0.6 * dark, 0.0, 1.0))
    return ReflectanceParams(
        ita=ita,
        blood=float(rng.uniform(0.12, 0.4)),
        blush=float(rng.uniform(0.0, 0.45)),
        lip_blood=float(rng.uniform(0.5, 1.3)),
        lip_melanin=float(rng.uniform(0.8, 1.0 + 0.5 * dark)),
        under_eye=float(rng.uniform(0.1, 0.8)),
        mottling=float(rng.uniform(0.03, 0.15)),
        hair_melanin=hair,
        brow_density=float(rng.uniform(0.45, 0.95)),
        beard=beard,
        freckles=int(rng.integers(20, 250)) if rng.random() < 0.3 * (1 - dark) + 0.05 else 0,
        moles=int(rng.integers(0, 5)),
        iris=int(rng.integers(len(_IRIS_COLOURS)) if ita > 20 else rng.integers(2)),
        shine=float(rng.uniform(0.6, 1.3)),
        pores=float(rng.uniform(0.3, 1.0)),
        wrinkles=float(rng.uniform(0.0, 1.0) ** 1.5),
        folds=float(rng.uniform(0.1, 1.0)),
        noise_seed=int(rng.integers(0, 2**31 - 1)),
    )


# ---------------------------------------------------------------------------- noise


def value_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth noise ``[size, size]`` with ~``cells`` features per side, zero-mean, std ~1."""
    grid = rng.standard_normal((cells + 3, cells + 3)).astype(np.float32)
    up = cv2.resize(grid, (size + 3 * size // cells, size + 3 * size // cells),
                    interpolation=cv2.INTER_CUBIC)
    off = size // cells
    return up[off:off + size, off:off + size]


def fbm(rng: np.random.Generator, size: int, cells: int, octaves: int = 3) -> np.ndarray:
    """Sum of ``octaves`` value-noise layers, each twice as fine and half as strong."""
    out = np.zeros((size, size), np.float32)
    amp, total = 1.0, 0.0
    for k in range(octaves):
        c = min(cells * 2**k, size)
        out += amp * value_noise(rng, size, c)
        total += amp * amp
        amp *= 0.5
    return out / math.sqrt(total)


def strands(rng: np.random.Generator, size: int, sigma_along: float, sigma_across: float,
            angle_deg: float, density: float) -> np.ndarray:
    """Hair-like streaks in [0, 1]: white noise smeared along ``angle_deg``, thresholded.

    ``density`` in [0, 1] is roughly the covered fraction.
    """
    n = rng.standard_normal((size, size)).astype(np.float32)
    k = int(math.ceil(3 * max(sigma_along, sigma_across))) * 2 + 1
    xs = np.arange(k, dtype=np.float32) - k // 2
    x, y = np.meshgrid(xs, xs)
    a = math.radians(angle_deg)
    along = x * math.cos(a) - y * math.sin(a)
    across = x * math.sin(a) + y * math.cos(a)
    ker = np.exp(-0.5 * ((along / sigma_along) ** 2 + (across / sigma_across) ** 2))
    s = cv2.filter2D(n, -1, (ker / np.sqrt((ker**2).sum())).astype(np.float32),
                     borderType=cv2.BORDER_REFLECT)
    thr = float(np.quantile(s[:: max(1, size // 64), :: max(1, size // 64)], 1.0 - density))
    return np.clip((s - thr) * 1.5 + 0.5, 0.0, 1.0) * (s > thr - 0.33)


def _spots(rng: np.random.Generator, size: int, where: np.ndarray, count: int,
           radius_px: tuple[float, float]) -> np.ndarray:
    """``count`` soft round spots at random texels where ``where`` > 0.5, in [0, 1].

    Each spot is a Gaussian of std-dev ``r`` texels and peak strength in [0.4, 1]; spots
    smaller than a texel are splatted with their area, so a low-resolution map shows them
    faint instead of one texel wide (maps at different sizes stay alike).
    """
    out = np.zeros((size, size), np.float32)
    ys, xs = np.nonzero(where > 0.5)
    if count == 0 or len(xs) == 0:
        return out
    pick = rng.integers(0, len(xs), size=count)
    radii = rng.uniform(*radius_px, size=count)
    strength = rng.uniform(0.4, 1.0, size=count)
    sigma = max(float(np.mean(radii)), 0.5)
    # an impulse of weight 2 pi r^2 blurred with std-dev sigma peaks at (r / sigma)^2
    weight = strength * 2 * math.pi * np.maximum(radii, 0.3) ** 2
    np.add.at(out, (ys[pick], xs[pick]), weight.astype(np.float32))
    return np.clip(cv2.GaussianBlur(out, (0, 0), sigma), 0.0, 1.0)


def _curve(size: int, pts: np.ndarray, sigma: float) -> np.ndarray:
    """A polyline through texel points ``[K, 2]``, blurred into a groove profile in [0, 1]."""
    img = np.zeros((size, size), np.float32)
    shift = 4
    cv2.polylines(img, [np.round(pts * (1 << shift)).astype(np.int32)], False, 1.0,
                  max(1, int(round(0.6 * sigma))), cv2.LINE_AA, shift)
    img = cv2.GaussianBlur(img, (0, 0), sigma)
    return img / max(float(img.max()), 1e-6)


def _bezier(p0, p1, p2, n: int = 24) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


# ------------------------------------------------------------------------ synthesis


def _hair_colour(melanin: float) -> np.ndarray:
    return np.exp((1 - melanin) * np.log(_HAIR_LIGHT) + melanin * np.log(_HAIR_DARK))


def _albedo(p: ReflectanceParams, lay: FaceLayout, rng: np.random.Generator) -> tuple:
    s, unit = lay.size, lay.size / 256.0
    m0 = float(melanin_for_ita(p.ita))
    low = fbm(rng, s, 6, 3)
    freckles = _spots(rng, s, np.maximum(lay.cheeks, lay.nose) * lay.skin, p.freckles,
                      (0.5 * unit, 1.3 * unit))
    melanin = m0 * np.exp(p.mottling * low)
    melanin *= 1 + 0.35 * p.under_eye * lay.under_eye + 0.15 * lay.eyelids
    melanin *= 1 + (p.lip_melanin - 1.0) * lay.lips
    melanin += (0.15 + 0.3 * m0) * freckles
    blood = (p.blood + p.blush * lay.cheeks + 0.2 * lay.nose_tip + p.lip_blood * lay.lips
             + 0.12 * lay.eyelids + 0.06 * fbm(rng, s, 12, 2))
    alb = skin_albedo(np.clip(melanin, 0, None), np.clip(blood, 0, None)).astype(np.float32)
    cool = np.array([0.82, 0.84, 0.95], np.float32)
    alb *= 1 - (1 - cool) * (p.under_eye * lay.under_eye)[..., None]
    alb *= (1 - 0.8 * lay.nostrils)[..., None]
    moles = _spots(rng, s, lay.skin * (1 - lay.lips), p.moles, (1.0 * unit, 2.2 * unit))
    mole_rgb = skin_albedo(m0 + 0.9, 0.2).astype(np.float32)
    alb = alb * (1 - moles[..., None]) + mole_rgb * moles[..., None]
    hair = _hair_colour(p.hair_melanin).astype(np.float32)
    brow_cov = lay.brows * strands(rng, s, 2.5 * unit, 0.45 * unit, 8.0, p.brow_density)
    brow_cov = np.clip(brow_cov + 0.25 * p.brow_density * lay.brows, 0, 1)
    beard_cov = np.zeros((s, s), np.float32)
    if p.beard > 0:
        zone = np.maximum(lay.beard, lay.mustache)
        fine = strands(rng, s, (0.5 + 1.2 * p.beard) * unit, 0.4 * unit, 80.0,
                       0.2 + 0.6 * p.beard)
        patchy = np.clip(0.75 + 0.5 * value_noise(rng, s, 10), 0, 1)
        beard_cov = zone * patchy * np.clip(0.6 * fine + 0.5 * p.beard, 0, 1) * min(1.0, 0.4 + p.beard)
    cov = np.maximum(brow_cov, beard_cov)[..., None]
    alb = alb * (1 - cov) + hair * cov
    lash = (0.85 * lay.lashes)[..., None]
    alb = alb * (1 - lash) + _hair_colour(max(p.hair_melanin, 0.7)).astype(np.float32) * lash
    alb *= (1 - 0.6 * lay.mouth)[..., None]
    alb = _paint_eyes(alb, p, lay)
    return np.clip(alb, 0.0, 1.0), brow_cov, beard_cov


def _paint_eyes(alb: np.ndarray, p: ReflectanceParams, lay: FaceLayout) -> np.ndarray:
    s = lay.size
    sclera = np.array([0.62, 0.55, 0.50], np.float32)
    iris_rgb = _IRIS_COLOURS[p.iris].astype(np.float32)
    r = lay.eye_radius
    iris = np.zeros((s, s), np.float32)
    pupil = np.zeros((s, s), np.float32)
    for c in lay.eye_centers:
        iris = np.maximum(iris, gaussian_blob(s, c, r) > 0.6)
        pupil = np.maximum(pupil, gaussian_blob(s, c, 0.45 * r) > 0.6)
    eye = lay.eyes[..., None]
    col = sclera * (1 - iris[..., None]) + iris_rgb * iris[..., None]
    col = col * (1 - pupil[..., None]) + 0.01 * pupil[..., None]
    return alb * (1 - eye) + col * eye


def _height(p: ReflectanceParams, lay: FaceLayout, rng: np.random.Generator,
            brow_cov: np.ndarray, beard_cov: np.ndarray) -> np.ndarray:
    """Height field in reference-texel units (texel size of a 256 map)."""
    s, unit = lay.size, lay.size / 256.0
    pts = lay.points
    grain = cv2.GaussianBlur(rng.standard_normal((s, s)).astype(np.float32), (0, 0), 0.55 * unit)
    grain /= max(float(grain.std()), 1e-6)
    pore_w = 0.6 + 0.5 * np.maximum(lay.nose, lay.cheeks) - 0.5 * lay.lips - 0.6 * lay.eyes
    h = 0.06 * p.pores * pore_w * grain
    # forehead lines
    brow_row = min(pts[i][1] for i in (70, 300, 105, 334))
    top_row = pts[10][1]
    n_lines = int(rng.integers(2, 6))
    for k in range(n_lines):
        row = brow_row - (k + 1) * (brow_row - top_row) / (n_lines + 1.5)
        xs = np.linspace(0.3 * s, 0.7 * s, 24)
        wave = rng.uniform(0.5, 2.0) * unit * np.sin(xs / s * rng.uniform(6, 14) + rng.uniform(0, 6))
        line = np.stack([xs, row + wave + 2.5 * unit * ((xs / s - 0.5) / 0.2) ** 2], axis=1)
        h -= 0.9 * p.wrinkles * _curve(s, line, 1.0 * unit) * lay.forehead
    for k in range(2):
        # nasolabial fold: from above the nose wing, bowing out, to beside the mouth corner
        a, m = pts[ALAR[k]], pts[MOUTH_CORNER[k]]
        side = -1.0 if k == 0 else 1.0
        end = m + np.array([side * 4.0, 6.0]) * unit
        mid = (a + end) / 2 + np.array([side * 6.0, 0.0]) * unit
        h -= 1.6 * p.folds * _curve(s, _bezier(a + np.array([side * 2.0, -2.0]) * unit, mid, end),
                                    2.2 * unit)
        # crow's feet and under-eye line
        o = pts[EYE_OUTER[k]]
        for ang in (-25.0, 0.0, 25.0):
            d = np.array([side * math.cos(math.radians(ang)), math.sin(math.radians(ang))])
            seg = np.stack([o + d * 3.0 * unit, o + d * 11.0 * unit])
            h -= 0.5 * p.wrinkles * _curve(s, seg, 0.7 * unit)
        c = lay.eye_centers[k]
        w = abs(pts[EYE_OUTER[k]][0] - c[0])
        arc = _bezier(c + np.array([-0.8 * w, 0.6 * w]), c + np.array([0.0, 1.1 * w]),
                      c + np.array([0.8 * w, 0.6 * w]))
        h -= 0.5 * p.wrinkles * _curve(s, arc, 0.8 * unit)
    lip_lines = strands(rng, s, 1.5 * unit, 0.35 * unit, 90.0, 0.5)
    h -= 0.25 * lay.lips * lip_lines
    h += 0.35 * brow_cov + 0.35 * beard_cov
    return h


def _normals(h: np.ndarray, unit: float) -> np.ndarray:
    """Tangent-space normals ``[S, S, 3]`` of height field ``h`` (reference-texel units)."""
    dh_drow, dh_dcol = np.gradient(h.astype(np.float32))
    nx = -dh_dcol * unit  # -dh/du
    ny = dh_drow * unit  # -dh/dv, v grows upwards = against rows
    n = np.stack([nx, ny, np.ones_like(nx)], axis=-1)
    return n / np.linalg.norm(n, axis=-1, keepdims=True)


def _specular(p: ReflectanceParams, lay: FaceLayout, rng: np.random.Generator,
              brow_cov: np.ndarray, beard_cov: np.ndarray) -> np.ndarray:
    t = 0.28 + 0.22 * lay.forehead + 0.22 * lay.nose + 0.15 * lay.nose_tip
    t -= 0.08 * lay.cheeks
    t = t * (1 - lay.lips) + 0.5 * lay.lips
    t *= p.shine * (1 + 0.1 * fbm(rng, lay.size, 16, 2))
    hair = np.maximum(brow_cov, beard_cov)
    t = t * (1 - hair) + 0.08 * hair
    t = t * (1 - lay.eyes) + 0.9 * lay.eyes
    return np.clip(t, 0.0, 1.0)


def synthesize(params: ReflectanceParams, size: int) -> Reflectance:
    """Reflectance maps of one face at ``size x size`` (all three at the same size).

    Deterministic: the same ``params`` and ``size`` give bit-identical maps.
    """
    lay = face_layout(size)
    rng = np.random.default_rng(params.noise_seed)
    alb, brow_cov, beard_cov = _albedo(params, lay, rng)
    spec = _specular(params, lay, rng, brow_cov, beard_cov)
    n = _normals(_height(params, lay, rng, brow_cov, beard_cov), size / 256.0)
    return Reflectance(
        albedo=torch.from_numpy(np.ascontiguousarray(alb.transpose(2, 0, 1))),
        specular=torch.from_numpy(spec[None].astype(np.float32)),
        normal=torch.from_numpy(np.ascontiguousarray(n.transpose(2, 0, 1).astype(np.float32))),
    )


def _area_resize(img: torch.Tensor, size: int) -> torch.Tensor:
    if img.shape[-1] == size:
        return img
    a = cv2.resize(img.permute(1, 2, 0).numpy(), (size, size), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(a.reshape(size, size, -1)).permute(2, 0, 1).contiguous()


def resize_reflectance(r: Reflectance, albedo_size: int, detail_size: int) -> Reflectance:
    """Area-resample albedo to ``albedo_size`` and specular/normal to ``detail_size``."""
    n = _area_resize(r.normal, detail_size)
    return Reflectance(
        albedo=_area_resize(r.albedo, albedo_size),
        specular=_area_resize(r.specular, detail_size),
        normal=n / n.norm(dim=0, keepdim=True).clamp_min(1e-8),
    )
