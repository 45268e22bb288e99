"""GGX microfacet specular terms, the pre-integrated DFG table and SH lobe factors.

Material model (the paper has one global roughness and a specular map ``t_r``):

* Roughness ``r`` is perceptual roughness in [0, 1]; the GGX width is ``α = r²``
  (Burley/Karis remapping). ``r`` may be a scalar or a per-pixel map. The default
  :data:`DEFAULT_ROUGHNESS` = 0.6 (α = 0.36) is close to the average Torrance–Sparrow
  roughness measured on faces by Weyrich et al. 2006 (m ≈ 0.3–0.45 across regions).
* Fresnel is Schlick's with ``F0 = F0_MAX · t_r`` (:data:`F0_MAX` = 0.08): ``t_r = 0.35``
  gives F0 ≈ 0.028, the value of skin (IOR ≈ 1.4); ``t_r = 0.5`` gives 0.04, the usual
  dielectric. The grazing value follows Lagarde & de Rousiers:
  ``f90 = saturate(50 · F0)``, so ``t_r = 0`` makes F ≡ 0 and the specular term vanishes
  exactly (the white-furnace test stays exact), while any ``t_r ≥ 0.25`` has f90 = 1.
* Masking–shadowing is Smith's height-correlated form for GGX (Heitz 2014), used as the
  visibility ``V = G / (4 (n·l)(n·v))``.

The split-sum factorization of the specular integral (Karis 2013; Lagarde & de Rousiers
2014, equations 10–11 of the paper) needs ``∫ f_r (n·l) dl = F0·A(n·v, r) + f90·B(n·v, r)``.
:func:`split_sum_table` computes ``A, B`` — and, for the ``"lobe"`` specular form, the
view-dependent shape of the F0- and f90-weighted reflection lobes (mean direction and
zonal band factors) — by importance sampling GGX with a Hammersley point set
(deterministic), once per process, cached in memory (about a second).

:func:`lobe_band_factors` gives the zonal SH factors ``g_l(r)`` (l = 0, 1, 2) of the
normalized lobe at normal incidence (Legendre moments of ``f_r (n·l)`` with F ≡ 1); the
specular-occlusion cone uses them.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "F0_MAX",
    "split_sum_column",
    "DEFAULT_ROUGHNESS",
    "MIN_ROUGHNESS",
    "f0_from_specular",
    "f90_from_f0",
    "ggx_d",
    "smith_visibility",
    "fresnel_schlick",
    "hammersley",
    "sample_ggx_half",
    "split_sum_table",
    "split_sum_lookup",
    "dfg_table",
    "dfg_lookup",
    "lobe_band_factors",
]

F0_MAX = 0.08
DEFAULT_ROUGHNESS = 0.6
#: Roughness is clamped below to this (α ≥ 0.0025) to keep the GGX lobe finite.
MIN_ROUGHNESS = 0.05

DFG_SIZE = (64, 32)  # (n·v nodes, roughness nodes)
DFG_SAMPLES = 2048
LOBE_SIZE = 128


def f0_from_specular(t_r: Tensor) -> Tensor:
    """Normal-incidence reflectance from the specular map: ``F0 = 0.08 · t_r``.

    Args:
        t_r: specular intensity, any shape, in [0, 1].

    Returns:
        F0, same shape, in [0, 0.08] (achromatic, linear).
    """
    return F0_MAX * t_r


def f90_from_f0(f0: Tensor) -> Tensor:
    """Grazing reflectance ``saturate(50 · F0)`` (Lagarde & de Rousiers 2014)."""
    return (50.0 * f0).clamp(0.0, 1.0)


def _alpha(roughness: Tensor | float) -> Tensor | float:
    if isinstance(roughness, Tensor):
        r = roughness.clamp(MIN_ROUGHNESS, 1.0)
    else:
        r = min(max(float(roughness), MIN_ROUGHNESS), 1.0)
    return r * r


def ggx_d(n_dot_h: Tensor, roughness: Tensor | float) -> Tensor:
    """GGX (Trowbridge–Reitz) normal distribution ``D(h)``, normalized so that
    ``∫ D(h) (n·h) dh = 1``.

    Args:
        n_dot_h: cosine between normal and half vector, any shape.
        roughness: perceptual roughness (scalar or broadcastable tensor); α = r².

    Returns:
        D, same shape (1/sr).
    """
    a2 = _alpha(roughness) ** 2
    d = n_dot_h * n_dot_h * (a2 - 1.0) + 1.0
    return a2 / (math.pi * d * d)


def smith_visibility(n_dot_v: Tensor, n_dot_l: Tensor, roughness: Tensor | float) -> Tensor:
    """Height-correlated Smith GGX visibility ``V = G₂ / (4 (n·v)(n·l))``.

    Args:
        n_dot_v, n_dot_l: cosines in (0, 1], broadcastable.
        roughness: perceptual roughness; α = r².

    Returns:
        V, broadcast shape.
    """
    a2 = _alpha(roughness) ** 2
    gv = n_dot_l * torch.sqrt(n_dot_v * n_dot_v * (1.0 - a2) + a2)
    gl = n_dot_v * torch.sqrt(n_dot_l * n_dot_l * (1.0 - a2) + a2)
    return 0.5 / (gv + gl)


def fresnel_schlick(v_dot_h: Tensor, f0: Tensor, f90: Tensor | float = 1.0) -> Tensor:
    """Schlick's Fresnel ``F0 + (f90 − F0)(1 − v·h)⁵`` (broadcast shape)."""
    return f0 + (f90 - f0) * (1.0 - v_dot_h).clamp(0.0, 1.0) ** 5


def hammersley(n: int) -> np.ndarray:
    """The 2-D Hammersley point set ``[n, 2]`` in [0, 1)² (float64, deterministic)."""
    i = np.arange(n, dtype=np.uint64)
    bits = i.copy()
    rev = np.zeros(n, dtype=np.uint64)
    for _ in range(32):
        rev = (rev << np.uint64(1)) | (bits & np.uint64(1))
        bits >>= np.uint64(1)
    return np.stack([(i.astype(np.float64) + 0.5) / n, rev.astype(np.float64) / 2.0**32], axis=1)


def sample_ggx_half(u: np.ndarray, alpha: float | np.ndarray) -> np.ndarray:
    """Map uniform ``u [n, 2]`` to GGX-distributed half vectors ``[..., n, 3]`` around +z.

    The density of the result is ``D(h) (n·h)`` (float64, numpy; used for the tables and
    the Monte Carlo references). ``alpha`` may be an array ``[m, 1]`` for ``[m, n, 3]``.
    """
    a2 = np.asarray(alpha, dtype=np.float64) ** 2
    cos_t = np.sqrt((1.0 - u[:, 0]) / (1.0 + (a2 - 1.0) * u[:, 0]))
    sin_t = np.sqrt(np.clip(1.0 - cos_t * cos_t, 0.0, None))
    phi = 2.0 * np.pi * u[:, 1]
    return np.stack(np.broadcast_arrays(sin_t * np.cos(phi), sin_t * np.sin(phi), cos_t), axis=-1)


def _np_visibility(nv: np.ndarray, nl: np.ndarray, a2: np.ndarray) -> np.ndarray:
    gv = nl * np.sqrt(nv * nv * (1.0 - a2) + a2)
    gl = nv * np.sqrt(nl * nl * (1.0 - a2) + a2)
    return 0.5 / (gv + gl)


@functools.lru_cache(maxsize=1)
def _split_sum_np() -> np.ndarray:
    """``[8, n_v, n_r]``: DFG (A, B) and the two view-dependent lobes (s, g1, g2)."""
    n_v, n_r = DFG_SIZE
    r = np.maximum(np.linspace(0.0, 1.0, n_r), MIN_ROUGHNESS)
    alpha = (r * r)[:, None]  # [n_r, 1]
    a2 = alpha**2
    h = sample_ggx_half(hammersley(DFG_SAMPLES), alpha)  # [n_r, S, 3]
    out = np.empty((8, n_v, n_r))
    for i, nv in enumerate(np.maximum(np.linspace(0.0, 1.0, n_v), 1e-3)):
        v = np.array([math.sqrt(1.0 - nv * nv), 0.0, nv])
        vh = h @ v
        nl = 2.0 * vh * h[..., 2] - nv
        ok = (nl > 0) & (vh > 0)
        vis = _np_visibility(nv, np.where(ok, nl, 1.0), a2)
        # ∫ f_r (n·l) dl estimated with pdf(l) = D (n·h) / (4 v·h): 4 V (n·l)(v·h)/(n·h) · F
        w = np.where(ok, 4.0 * vis * nl * vh / h[..., 2], 0.0)
        fc = (1.0 - np.clip(vh, 0.0, 1.0)) ** 5
        out[0, i] = (w * (1.0 - fc)).mean(-1)
        out[1, i] = (w * fc).mean(-1)
        lx = 2.0 * vh * h[..., 0] - v[0]
        for c, wf in ((2, w * (1.0 - fc)), (5, w * fc)):
            out[c : c + 3, i] = _lobe_moments(wf, lx, nl, nv)
    # at normal incidence R = n, so s does not matter (and is ill-conditioned): continue it
    out[2, -1] = out[2, -2]
    out[5, -1] = out[5, -2]
    return out


def _lobe_moments(w: np.ndarray, lx: np.ndarray, lz: np.ndarray, nv: float) -> np.ndarray:
    """``(s, g1, g2)`` of a sampled lobe (weights ``w``, directions ``(lx, 0, lz)``, both
    ``[n_r, S]``) for the view with ``n·v = nv``: mean direction ``m = g1·D``, zonal
    band-2 moment ``g2`` about ``D``, and ``s`` with ``D = normalize(n + s (R − n))``."""
    ws = np.maximum(w.sum(-1), 1e-300)
    mx, mz = (w * lx).sum(-1) / ws, (w * lz).sum(-1) / ws
    g1 = np.maximum(np.hypot(mx, mz), 1e-12)
    dx, dz = mx / g1, mz / g1
    cos_ld = lx * dx[:, None] + lz * dz[:, None]
    g2 = (w * 0.5 * (3.0 * cos_ld**2 - 1.0)).sum(-1) / ws
    # R = (−sin θv, 0, cos θv) in the frame where v = (sin θv, 0, cos θv)
    sin_v = math.sqrt(1.0 - nv * nv)
    tan_d = np.maximum(-dx, 0.0) / np.maximum(dz, 1e-12)
    s = tan_d / np.maximum(sin_v + tan_d * (1.0 - nv), 1e-12)
    return np.stack([s, g1, g2])


@functools.lru_cache(maxsize=16)
def _split_sum_cached(dtype: torch.dtype, device: str) -> Tensor:
    return torch.as_tensor(_split_sum_np(), dtype=dtype, device=torch.device(device))


def _dev(device) -> str:
    return str(torch.device(device) if device is not None else "cpu")


def split_sum_table(dtype: torch.dtype = torch.float32, device=None) -> Tensor:
    """Pre-integrated specular table ``[8, 64, 32]`` over ``n·v = i / 63`` (clamped to
    ≥ 1e-3) and roughness ``r = j / 31`` (clamped to ≥ :data:`MIN_ROUGHNESS`).

    Channels:

    * ``A, B``: the DFG terms, ``∫ f_r(l, v) (n·l) dl = F0·A + f90·B`` (unit incident
      radiance, Schlick Fresnel, height-correlated Smith GGX);
    * ``s, g1, g2`` (channels 2–4 for the F0 part, 5–7 for the f90 part): each of the
      two normalized reflection lobes ``f_r (n·l)`` with the Fresnel weight ``1 − Fc``
      (F0 part) or ``Fc = (1 − v·h)⁵`` (f90 part) seen as a zonal lobe about its mean
      direction ``D = normalize(n + s (R − n))`` (R the mirror direction), with first
      and second Legendre moments ``g1, g2`` about ``D``. Bands 0 and 1 of the lobes are
      reproduced exactly, band 2 by its zonal part. (One lobe for both parts is not
      enough: at grazing angles the Fresnel weight reshapes the lobe strongly.)

    Computed by importance sampling GGX with :data:`DFG_SAMPLES` Hammersley points per
    node (deterministic), once per process (about a second), cached in memory.
    """
    return _split_sum_cached(dtype, _dev(device))


def dfg_table(dtype: torch.dtype = torch.float32, device=None) -> Tensor:
    """The ``(A, B)`` DFG channels of :func:`split_sum_table`: ``[2, 64, 32]``."""
    return split_sum_table(dtype, device)[:2]


def _column(table: Tensor, roughness: float) -> Tensor:
    """A table ``[C, n_v, n_r]`` linearly interpolated to one roughness: ``[C, n_v]``."""
    x = min(max(roughness, 0.0), 1.0) * (table.shape[2] - 1)
    j = min(int(math.floor(x)), table.shape[2] - 2)
    f = x - j
    return table[:, :, j] * (1.0 - f) + table[:, :, j + 1] * f


@functools.lru_cache(maxsize=32)
def split_sum_column(roughness: float, dtype: torch.dtype, device: str) -> Tensor:
    """:func:`split_sum_table` interpolated to one roughness: ``[8, 64]`` over ``n·v``
    (cached per roughness, dtype and device string)."""
    return _column(split_sum_table(dtype, device), roughness)


def _table_lookup(table: Tensor, n_dot_v: Tensor, roughness: Tensor | float, column: Tensor | None) -> Tensor:
    if n_dot_v.dim() != 2:
        raise ValueError(f"n_dot_v must have shape [B, N], got {tuple(n_dot_v.shape)}")
    if column is not None:
        n_v = column.shape[1]
        x = n_dot_v.clamp(0.0, 1.0) * (n_v - 1)
        i0 = x.detach().floor().clamp(0, n_v - 2).long()
        flat = i0.reshape(-1)
        c0 = column.index_select(1, flat).view(-1, *i0.shape)  # [C, B, N]
        c1 = column.index_select(1, flat + 1).view(-1, *i0.shape)
        return (c0 + (x - i0.to(x.dtype)) * (c1 - c0)).transpose(0, 1)
    # grid_sample: x indexes the last axis (roughness), y the rows (n·v); align_corners
    # maps -1/+1 onto the first/last nodes.
    grid = torch.stack(
        [roughness.clamp(0.0, 1.0) * 2.0 - 1.0, n_dot_v.clamp(0.0, 1.0) * 2.0 - 1.0], dim=-1
    ).expand(n_dot_v.shape[0], -1, -1)
    out = F.grid_sample(
        table.unsqueeze(0).expand(grid.shape[0], -1, -1, -1),
        grid.unsqueeze(1),
        mode="bilinear",
        padding_mode="border",
        align_corners=True,
    )  # [B, C, 1, N]
    return out[:, :, 0]


def split_sum_lookup(n_dot_v: Tensor, roughness: Tensor | float) -> Tensor:
    """Bilinear lookup of :func:`split_sum_table` (differentiable in both arguments).

    For a scalar roughness the table is first interpolated to that roughness (once,
    cached) and then linearly interpolated in ``n·v`` — the same bilinear value as the
    general path, with fewer operations per pixel.

    Args:
        n_dot_v: ``[B, N]`` cosines, clamped to [0, 1].
        roughness: scalar or ``[B, N]`` perceptual roughness in [0, 1].

    Returns:
        ``[B, 8, N]``: (A, B, s_A, g1_A, g2_A, s_B, g1_B, g2_B) per pixel (channel-first).
    """
    table = split_sum_table(n_dot_v.dtype, n_dot_v.device)
    col = None
    if not isinstance(roughness, Tensor):
        col = split_sum_column(float(roughness), n_dot_v.dtype, str(n_dot_v.device))
    return _table_lookup(table, n_dot_v, roughness, col)


def dfg_lookup(n_dot_v: Tensor, roughness: Tensor | float) -> Tensor:
    """The ``(A, B)`` channels of :func:`split_sum_lookup`: ``[B, 2, N]``."""
    return split_sum_lookup(n_dot_v, roughness)[:, :2]


@functools.lru_cache(maxsize=1)
def _lobe_np() -> np.ndarray:
    r = np.maximum(np.linspace(0.0, 1.0, LOBE_SIZE), MIN_ROUGHNESS)
    alpha = (r * r)[:, None]
    # At normal incidence the lobe is symmetric about n; a midpoint rule in the GGX
    # inverse-CDF variable is a deterministic importance-sampled quadrature.
    n = 4096
    u = (np.arange(n) + 0.5) / n
    a2 = alpha**2
    nh = np.sqrt((1.0 - u) / (1.0 + (a2 - 1.0) * u))  # [m, n]
    nl = 2.0 * nh * nh - 1.0  # v = n: l = reflect(n, h)
    ok = nl > 0
    nl_s = np.where(ok, nl, 1.0)
    w = np.where(ok, 4.0 * _np_visibility(1.0, nl_s, a2) * nl_s, 0.0)  # (v·h)/(n·h) = 1
    p1 = nl_s
    p2 = 0.5 * (3.0 * nl_s * nl_s - 1.0)
    s = w.sum(-1)
    return np.stack([np.ones_like(s), (w * p1).sum(-1) / s, (w * p2).sum(-1) / s], axis=-1)


@functools.lru_cache(maxsize=16)
def _lobe_cached(dtype: torch.dtype, device: str) -> Tensor:
    return torch.as_tensor(_lobe_np(), dtype=dtype, device=torch.device(device))


def lobe_band_factors(roughness: Tensor | float, dtype=torch.float32, device=None) -> Tensor:
    """Zonal SH factors ``g_l(r)`` (l = 0, 1, 2) of the normalized GGX reflection lobe.

    Convolving radiance coefficients band-wise with ``g_l`` and evaluating at the
    reflection direction gives the split-sum "pre-filtered radiance" (exact at normal
    incidence up to the Fresnel variation). ``g_0 = 1``; ``g_1, g_2`` fall from 1 (mirror)
    as the roughness grows. Tabulated at 128 roughness values, linearly interpolated.

    Args:
        roughness: scalar, or tensor ``[...]`` in [0, 1] (then dtype/device follow it).

    Returns:
        ``[3]`` for a scalar, else ``[..., 3]``.
    """
    if isinstance(roughness, Tensor):
        dtype, device = roughness.dtype, roughness.device
        pos = roughness.clamp(0.0, 1.0) * (LOBE_SIZE - 1)
    else:
        pos = torch.tensor(min(max(float(roughness), 0.0), 1.0) * (LOBE_SIZE - 1), dtype=dtype, device=device)
    table = _lobe_cached(dtype, str(torch.device(device) if device is not None else "cpu"))
    i0 = pos.detach().floor().clamp(0, LOBE_SIZE - 2).long()
    frac = (pos - i0.to(pos.dtype)).unsqueeze(-1)
    return table[i0] * (1.0 - frac) + table[i0 + 1] * frac
