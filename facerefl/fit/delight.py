"""Delighting: the photo's own albedo detail without the photo's lighting (beyond the paper).

The latent phase (equation 1) gives maps the networks can draw and an SH light. A photo
holds albedo detail finer than the networks draw (pores, moles, stubble, the eyes' and
teeth's own colours), and shading the SH light and the baked occlusion cannot express
(hard cast shadows, a light's high orders). The old per-texel refinement fitted an albedo
residual to the photo and so put both into the albedo. Here the two are told apart by
their spatial scale, in closed form, with no optimizer:

0. The eye openings' specular weight is capped at what their darkest pixels allow
   (:func:`eye_specular_cap`). The networks draw every eye as shiny as the synthetic
   generator's (``t_r`` ≈ 0.9), and with a diffuse weight of ``1 − t_r`` real eyes
   would count as unseen.
1. Every covered pixel ``p`` is shaded under the fitted light with albedo 1, giving its
   irradiance factor ``E_p`` (diffuse, occlusion included) and specular ``S_p``; its
   *observed albedo* is ``a_p = (photo_p − S_p) / E_p`` (linear RGB).
2. ``r_p = log a_p − log P(uv_p)`` is how far the photo departs from the prior ``P``: the
   latent albedo over the skin smoothed at the shading scale (the networks' drawn eyes,
   brows and mouth do not survive the smoothing). It is splatted to UV with a confidence weight ``w_p`` (below) and spread by
   normalized convolution at two scales: ``r_d`` (about a texel: the detail) and
   ``r_s`` (``shading_sigma`` of the map side, over the skin texels only: the shading
   residual). ``r_s`` is what varies slowly over the face, so it is what the light
   model missed; it goes into a separate *shading residual* map, never into the albedo.
3. The albedo is ``P · exp(r_d − r_s)``. On skin the detail ``r_d − r_s`` is softly
   limited (``detail_limit`` in log units) so that a shadow edge sharper than ``r_s``
   can leave at most a faint trace. On the non-skin regions of the layout (eyes, brows,
   inner mouth) it is not limited: there the albedo is the photo's own, delit by ``E`` and
   by the shading residual the surrounding skin shows, so the networks' drawn features
   never appear where the photo shows the real ones. The lips count as such a region here
   (their colour is theirs), though they are skin for the range projection.
   The eye openings are filled from their own pixels only (``eyes_apart``): the lids
   around them are seen far better and would spread into them. Their rim, the lid
   margin the fitted mesh places poorly, counts as unseen (``eye_rim``).
4. Texels the photo sees poorly (grazing, hidden, dim, clipped) take the detail of the
   mirrored texel (the layout is left–right symmetric) in proportion to that texel's
   confidence, and the rest from ``P``; on the eyes, brows and inner mouth the rest is the
   latent albedo instead (``unseen_features="latent"``: the networks' drawn features
   rather than smoothed skin where neither side is seen).
5. Skin texels are projected into the skin-reflectance range (:data:`SKIN_RANGE`).

The reconstruction is ``A · E · Σ + S`` with the shading residual ``Σ``: ``exp(r_s)``
times, where the photo saw the texel, whatever the albedo was not allowed to take (detail
beyond the limit, what the skin-range projection removed). It restores what the light
model missed, so the rendering still matches the photo, while the relit renders use the
albedo alone. Weights ``w_p``: the view cosine (ramp from the unwrap's grazing cut-off),
the irradiance relative to the face's median (never divide by a near-zero ``E``) and
unclipped photo values.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from facerefl.errors import InputError
from facerefl.geometry.template import (eyes_uv_coverage, load_template, region_uv_mask, skin_uv_mask,
                                       uv_coverage_mask)
from facerefl.render.color import LUMA, srgb_to_linear
from facerefl.render.maps import ReflectanceMaps
from facerefl.render.shading import PreparedGBuffer, shade_prepared

__all__ = ["DelightSettings", "Delit", "SkinRange", "SKIN_RANGE", "delight", "splat_to_uv",
           "normalized_blur", "skin_range_violations", "project_to_skin"]



@dataclass(frozen=True)
class SkinRange:
    """A box of plausible skin albedos (linear RGB): luminance and three colour ratios.

    A texel is inside when ``lum_min <= Y <= lum_max`` and each of ``G/R``, ``B/G`` and
    ``B/R`` lies in its interval. The default box is the range the two-chromophore skin
    model of :mod:`facerefl.data.skin` spans over epidermal melanin depth 0–1.6 and blood
    depth 0–1.8 (very light to dark skin, pale to flushed, lips included): Y 0.032–0.68,
    G/R 0.16–0.83, B/G 0.51–1.89, B/R 0.19–0.65, widened by 15 % (Y down by a third, for
    stubble and moles). Magenta (B ≈ R), green (G > R) and white or near-black texels fall
    outside it.
    """

    lum_min: float = 0.02
    lum_max: float = 0.78
    gr_min: float = 0.14
    gr_max: float = 0.95
    bg_min: float = 0.44
    bg_max: float = 2.17
    br_min: float = 0.16
    br_max: float = 0.75


SKIN_RANGE = SkinRange()

#: Choices of :attr:`DelightSettings.unseen_features`.
UNSEEN_FEATURES = ("latent", "prior")


@dataclass(frozen=True)
class DelightSettings:
    """Settings of :func:`delight`.

    Attributes:
        prior_sigma: std-dev of the Gaussian that smooths the latent albedo into the prior,
            as a fraction of the map side (None: ``shading_sigma``).
        adjust_light: the light takes the latent phase's per-channel mean misfit over the
            skin (else the shading residual keeps it).
        shading_sigma: std-dev of the shading residual's Gaussian, as a fraction of the
            albedo map's side (1/40 ≈ 6 texels at 256²).
        detail_limit: soft limit (log units, ``lim · tanh(d / lim)``) of the skin detail's
            luminance part.
        chroma_limit: the same for its chroma part (detail minus its luminance).
        min_irradiance: relative irradiance (to the face's median) below which a pixel
            carries no weight; full weight from three times this value.
        min_cos, full_cos: view-cosine ramp of the weights.
        max_size: largest side of the delit albedo; the side follows the face's pixel count
            (:func:`albedo_size`).
        mirror: borrow the mirrored texel's detail where a texel is seen poorly.
        skin_range: project skin texels into :data:`SKIN_RANGE`.
        eyes_apart: fill the eye openings' detail from their own pixels only (the lids
            around them are seen better and would spread into them with confidence).
        eye_rim: width of the eye openings' edge, as a fraction of the map side, whose
            photo colours count as unseen (0: none).
        unseen_features: what the eyes, brows and inner mouth take where neither the photo
            nor the mirrored texel shows them: ``"latent"``, the latent phase's albedo (the
            networks' drawn features), or ``"prior"``, the smoothed skin.
        eye_specular_margin: cap the eye openings' specular weight at what the photo's
            darkest eye pixels allow (:func:`eye_specular_cap`), divided by this margin
            (0: keep the latent phase's).
    """

    shading_sigma: float = 1.0 / 40.0
    prior_sigma: float | None = 0.5
    adjust_light: bool = False
    detail_limit: float = 0.02
    chroma_limit: float = 0.05
    min_irradiance: float = 0.12
    min_cos: float = 0.15
    full_cos: float = 0.45
    mirror: bool = True
    skin_range: bool = True
    max_size: int = 1024
    eyes_apart: bool = True
    eye_rim: float = 0.004
    unseen_features: str = "latent"
    eye_specular_margin: float = 0.5

    @classmethod
    def from_config(cls, cfg) -> "DelightSettings | None":
        """From a mapping ``{enabled, <field>: value, ...}`` (Hydra's ``fit.delight``);
        None when it is missing or ``enabled`` is false. Unknown keys are an error."""
        if cfg is None:
            return None
        items = dict(cfg)
        if not items.pop("enabled", True):
            return None
        names = set(cls.__dataclass_fields__)
        unknown = sorted(set(items) - names)
        if unknown:
            raise InputError(f"unknown fit.delight keys {unknown}; known: {sorted(names | {'enabled'})}")
        values = {}
        for k, v in items.items():
            if k == "prior_sigma" and v is None:
                values[k] = None
                continue
            if k == "unseen_features":
                values[k] = v
                continue
            flag = k in ("mirror", "skin_range", "adjust_light", "eyes_apart")
            ok = isinstance(v, bool) if flag else (isinstance(v, (int, float)) and not isinstance(v, bool))
            if k == "max_size":
                ok = ok and float(v) == int(v)
            if not ok:
                kind = "true or false" if flag else ("a whole number" if k == "max_size" else "a number")
                raise InputError(f"fit.delight.{k} must be {kind}, got {v!r}")
            values[k] = v if flag else (int(v) if k == "max_size" else float(v))
        return cls(**values)

    def __post_init__(self) -> None:
        if not 0.0 <= self.eye_rim <= 0.05:
            raise InputError(f"fit.delight.eye_rim must be in [0, 0.05], got {self.eye_rim}")
        if self.unseen_features not in UNSEEN_FEATURES:
            raise InputError(f"fit.delight.unseen_features must be one of {list(UNSEEN_FEATURES)}, "
                             f"got {self.unseen_features!r}")
        if not 0.0 < self.shading_sigma <= 0.5:
            raise InputError(f"fit.delight.shading_sigma must be in (0, 0.5], got {self.shading_sigma}")
        if not (self.detail_limit > 0 and self.chroma_limit > 0):
            raise InputError("fit.delight.detail_limit and chroma_limit must be > 0")
        if not 64 <= self.max_size <= 4096:
            raise InputError(f"fit.delight.max_size must be in [64, 4096], got {self.max_size}")
        if not 0.0 <= self.min_cos < self.full_cos <= 1.0:
            raise InputError("fit.delight needs 0 <= min_cos < full_cos <= 1")
        if not 0.0 <= self.eye_specular_margin <= 1.0:
            raise InputError(f"fit.delight.eye_specular_margin must be in [0, 1], got {self.eye_specular_margin}")


@dataclass(frozen=True)
class Delit:
    """Result of :func:`delight` (UV, NCHW, ``S × S`` = the albedo's grid).

    Attributes:
        maps: the latent phase's maps with the albedo ``[1, 3, S, S]`` (linear) replaced
            (and the eye openings' specular weight capped, see :func:`eye_specular_cap`).
        light: ``[1, 3, 9]`` the input light with each channel scaled by the mean misfit of
            the latent phase over the skin (the albedo keeps its level).
        shading: ``[1, 3, S, S]`` multiplicative shading residual (linear, 1 = none) that
            the reconstruction applies to the diffuse term; not part of the reflectance.
        confidence: ``[1, 1, S, S]`` in [0, 1]: how well the photo saw each texel.
        out_of_range: fraction of the valid skin texels outside the skin range *before*
            the projection (0 when there are none).
    """

    maps: ReflectanceMaps
    light: Tensor
    shading: Tensor
    confidence: Tensor
    out_of_range: float


def _smoothstep(x: Tensor, lo: float, hi: float) -> Tensor:
    t = ((x - lo) / max(hi - lo, 1e-8)).clamp(0, 1)
    return t * t * (3 - 2 * t)


def _luma(x: Tensor, dim: int) -> Tensor:
    w = torch.tensor(LUMA, dtype=x.dtype, device=x.device)
    shape = [1] * x.dim()
    shape[dim] = 3
    return (x * w.view(shape)).sum(dim, keepdim=True)


def splat_to_uv(uv: Tensor, values: Tensor, weight: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """Bilinear splat of weighted per-pixel values onto a UV grid.

    Args:
        uv: ``[P, 2]`` texture coordinates (u right, v up; texel centres as in
            :func:`~facerefl.render.texture.sample_texture`).
        values: ``[P, C]``; weight: ``[P]`` (≥ 0).
        size: grid side S.

    Returns:
        ``(Σ w·v [C, S, S], Σ w [1, S, S])`` (row 0 at v = 1).
    """
    x = uv[:, 0] * size - 0.5
    y = (1.0 - uv[:, 1]) * size - 0.5
    x0, y0 = torch.floor(x), torch.floor(y)
    num = values.new_zeros(values.shape[1], size * size)
    den = values.new_zeros(1, size * size)
    for dx in (0, 1):
        for dy in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            wt = weight * (1 - (x - xi).abs()) * (1 - (y - yi).abs())
            ok = (xi >= 0) & (xi < size) & (yi >= 0) & (yi < size) & (wt > 0)
            idx = (yi[ok] * size + xi[ok]).long()
            num.index_add_(1, idx, (values[ok] * wt[ok, None]).T)
            den.index_add_(1, idx, wt[ok][None])
    return num.view(-1, size, size), den.view(1, size, size)


def _gauss(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of ``[C, S, S]`` with zero padding."""
    if sigma <= 0:
        return x
    r = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[0]
    y = F.conv2d(x[:, None], k.view(1, 1, 1, -1), padding=(0, r))
    y = F.conv2d(y, k.view(1, 1, -1, 1), padding=(r, 0))
    return y[:, 0].view(c, *x.shape[1:])


def normalized_blur(num: Tensor, den: Tensor, sigma: float, eps: float = 1e-6) -> tuple[Tensor, Tensor]:
    """Normalized convolution: ``(G*num / G*den, G*den)`` for ``num [C, S, S]``, ``den [1, S, S]``;
    the ratio is 0 where ``G*den < eps``.

    A wide Gaussian (``sigma`` > 4 texels) runs on a grid shrunk by a power of two ``f``
    (average pooling, so ``σ/f`` stays in [2, 4) texels) and is upsampled bilinearly: the
    result is smooth at that scale anyway, and a 512² map blurred at σ 256 takes
    milliseconds instead of seconds."""
    size = num.shape[-1]
    f = 1
    while sigma / f >= 4 and size // (2 * f) >= 8 and size % (2 * f) == 0:
        f *= 2
    if f > 1:
        n, d = (_gauss(F.avg_pool2d(x[None], f)[0], sigma / f) for x in (num, den))
        ratio = torch.where(d > eps, n / d.clamp_min(eps), torch.zeros_like(n))
        return tuple(F.interpolate(x[None], size=num.shape[-2:], mode="bilinear", align_corners=False)[0]
                     for x in (ratio, d))
    n, d = _gauss(num, sigma), _gauss(den, sigma)
    return torch.where(d > eps, n / d.clamp_min(eps), torch.zeros_like(n)), d


def skin_range_violations(albedo: Tensor, mask: Tensor, rng: SkinRange = SKIN_RANGE) -> Tensor:
    """``[1, 1, S, S]`` bool: texels of ``mask`` whose albedo ``[1, 3, S, S]`` (linear) lies
    outside ``rng``."""
    r, g, b = albedo[:, 0:1], albedo[:, 1:2], albedo[:, 2:3]
    y = _luma(albedo, 1)
    gr = g / r.clamp_min(1e-6)
    bg = b / g.clamp_min(1e-6)
    br = b / r.clamp_min(1e-6)
    bad = ((y < rng.lum_min) | (y > rng.lum_max) | (gr < rng.gr_min) | (gr > rng.gr_max)
           | (bg < rng.bg_min) | (bg > rng.bg_max) | (br < rng.br_min) | (br > rng.br_max))
    return bad & (mask > 0.5)


def project_to_skin(albedo: Tensor, rng: SkinRange = SKIN_RANGE) -> Tensor:
    """Clamp an albedo ``[1, 3, S, S]`` (linear) into ``rng``: the colour ratios are clamped
    first (keeping R; B to the intersection of its B/G and B/R intervals, never empty for
    the default box), then the luminance is scaled into its range."""
    r = albedo[:, 0:1].clamp_min(1e-4)
    g = r * (albedo[:, 1:2] / r).clamp(rng.gr_min, rng.gr_max)
    lo = torch.maximum(rng.bg_min * g, rng.br_min * r)
    hi = torch.minimum(rng.bg_max * g, rng.br_max * r)
    b = torch.minimum(torch.maximum(albedo[:, 2:3], lo), hi)
    out = torch.cat([r, g, b], 1)
    y = _luma(out, 1)
    scale = y.clamp(rng.lum_min * 1.0001, rng.lum_max * 0.9999) / y.clamp_min(1e-8)
    return (out * scale).clamp(0, 1)


def _layout_masks(size: int, device, dtype) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(skin, lips, covered, eyes)`` ``[1, 1, S, S]`` masks of the template's UV layout
    (the lips are part of the skin region; the eyes are the openings' area coverage)."""
    return tuple(torch.from_numpy(m).to(device, dtype, copy=True)[None, None] for m in _layout_masks_np(int(size)))


@functools.lru_cache(maxsize=4)
def _layout_masks_np(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The masks of :func:`_layout_masks` as float32 arrays, rasterized once per size."""
    template = load_template()
    skin_np = skin_uv_mask(None, size)
    lips_np = (region_uv_mask(template, template.region("lips_outer"), size)
               & ~region_uv_mask(template, template.region("lips_inner"), size) & skin_np)
    return tuple(m.astype(np.float32) for m in (skin_np, lips_np, uv_coverage_mask(template, size),
                                                eyes_uv_coverage(size)))


#: Fraction of the square UV grid the template's layout covers (measured: 0.66 at 128², 0.65 at
#: 512²); only used to choose :func:`albedo_size`.
LAYOUT_FRACTION = 0.65


def albedo_size(face_pixels: float, min_size: int, max_size: int) -> int:
    """Side of the delit albedo: the smallest power of two ≥ ``min_size`` whose layout has
    at least two texels per face pixel (so the photo's detail survives resampling),
    capped at ``max_size``.

    >>> albedo_size(7000, 128, 1024), albedo_size(28000, 128, 1024), albedo_size(2e6, 256, 1024)
    (256, 512, 1024)
    """
    size = max(int(min_size), 16)
    while size < max_size and size * size * LAYOUT_FRACTION < 2.0 * face_pixels:
        size *= 2
    return min(size, int(max_size))


def _observed(prep: PreparedGBuffer, target_srgb: Tensor, maps: ReflectanceMaps, light: Tensor,
              roughness: float, spec_model: str, settings: "DelightSettings") -> tuple[Tensor, Tensor]:
    """Per covered pixel: the observed albedo ``a = (photo − S) / E`` ``[P, 3]`` (linear, not
    clamped above) and its weight ``w`` ``[P]`` (module docstring)."""
    p = prep.num_pixels
    dtype, dev = light.dtype, light.device
    ones = torch.ones(1, 3, 2, 2, dtype=dtype, device=dev)
    sh = shade_prepared(prep, ones, maps.specular, light, maps.normal, roughness=roughness,
                        spec_model=spec_model, to_image=False)
    irr, spec = sh.diffuse[0], sh.specular[0]
    covered = (prep.index[0] < prep.height * prep.width).to(dtype)
    irr_l = _luma(irr, 1)[:, 0]
    med = irr_l[covered > 0].median().clamp_min(1e-6) if p and bool((covered > 0).any()) else irr_l.new_tensor(1.0)
    cos = (prep.normal[0] * prep.view_dir[0]).sum(0)
    w = (_smoothstep(cos, settings.min_cos, settings.full_cos)
         * _smoothstep(irr_l / med, settings.min_irradiance, 3 * settings.min_irradiance)
         * (target_srgb[0].amax(1) < 0.985).to(dtype) * covered)
    a = (srgb_to_linear(target_srgb[0]) - spec).clamp_min(1e-3) / irr.clamp_min(1e-4)
    return a, w


def eye_specular_cap(prep: PreparedGBuffer, target_srgb: Tensor, maps: ReflectanceMaps, light: Tensor,
                     roughness: float, spec_model: str, margin: float, quantile: float = 0.1,
                     min_pixels: int = 16) -> Tensor | None:
    """The largest specular weight ``t_r`` the photo's eye openings allow, ``[]`` (or None).

    The renderer weights the diffuse term by ``1 − t_r``; a pixel's colour is at least its
    specular term ``t_r · S₁`` (``S₁``: the specular shading at weight 1 under the fitted
    light) because the albedo is not negative. So the darkest eye pixels bound ``t_r``:
    ``t_r ≤ photo / S₁``. The bound is taken at a low ``quantile`` over the well-seen,
    unclipped eye pixels (luminance), divided by ``margin`` (the specular shading may be
    overestimated by up to ``1 / margin``). Real eyes, whose pupils and irises are dark and
    whose sclera is diffuse, get a low cap; a face whose eyes really are as shiny as the
    networks drew them (the synthetic generator's, ``t_r`` = 0.9) keeps them.

    Args:
        prep, target_srgb, maps, light, roughness, spec_model: as :func:`delight`.
        margin: in (0, 1].
        quantile: which low quantile of ``photo / S₁`` bounds ``t_r``.
        min_pixels: fewer well-seen eye pixels than this give None (no cap).
    """
    dtype, dev = light.dtype, light.device
    eyes = _layout_masks(128, dev, dtype)[3]
    uv = prep.uv[0]
    grid = torch.stack([uv[:, 0] * 2 - 1, 1 - uv[:, 1] * 2], -1).view(1, 1, -1, 2).to(dtype)
    inside = F.grid_sample(eyes, grid, mode="nearest", padding_mode="zeros", align_corners=False)[0, 0, 0] > 0.5
    covered = prep.index[0] < prep.height * prep.width
    cos = (prep.normal[0] * prep.view_dir[0]).sum(0)
    sel = inside & covered & (cos > 0.45) & (target_srgb[0].amax(1) < 0.985)
    if int(sel.sum()) < min_pixels:
        return None
    s1 = shade_prepared(prep, torch.ones(1, 3, 2, 2, dtype=dtype, device=dev),
                        torch.ones(1, 1, 2, 2, dtype=dtype, device=dev), light, maps.normal,
                        roughness=roughness, spec_model=spec_model, to_image=False).specular[0]
    ratio = _luma(srgb_to_linear(target_srgb[0]), 1)[:, 0][sel] / _luma(s1, 1)[:, 0][sel].clamp_min(1e-6)
    return (torch.quantile(ratio, quantile) / margin).clamp(0.0, 1.0)


def cap_eye_specular(specular: Tensor, cap: Tensor | float) -> Tensor:
    """Lower the specular map ``[1, 1, S, S]`` over the eye openings to at most ``cap``.

    A texel the openings cover by a fraction ``c`` (or next to one they cover) is capped
    at ``c · cap + (1 − c) · max(cap, m)``, ``m`` the map's median over the layout's skin:
    the networks draw the eyes' shine over every texel the openings touch and a little
    beyond, and the lid share of an edge texel keeps at most the skin's typical value
    (no bright ring around the eyes)."""
    size = specular.shape[-1]
    skin, _, _, cov = (m[0, 0] for m in _layout_masks(size, specular.device, specular.dtype))
    skin = skin > 0.5
    cap = torch.as_tensor(cap, dtype=specular.dtype, device=specular.device)
    lid = torch.maximum(cap, specular[0, 0][skin].median()) if bool(skin.any()) else cap
    touched = F.max_pool2d((cov > 0).to(cov.dtype)[None, None], 3, stride=1, padding=1)[0, 0] > 0
    limit = torch.where(touched, cov * cap + (1 - cov) * lid, torch.full_like(cov, float("inf")))
    return torch.minimum(specular, limit)


def _limit(detail: Tensor, lum_limit: float, chroma_limit: float) -> Tensor:
    """Soft-limit log-albedo detail ``[3, S, S]``: its luminance part (the luma-weighted
    mean of the channels) to ``lum_limit``, the rest (chroma) to ``chroma_limit``."""
    lum = _luma(detail, 0)
    chroma = detail - lum
    return lum_limit * torch.tanh(lum / lum_limit) + chroma_limit * torch.tanh(chroma / chroma_limit)


def delight(prep: PreparedGBuffer, target_srgb: Tensor, maps: ReflectanceMaps, light: Tensor,
            roughness: float, spec_model: str, settings: DelightSettings = DelightSettings(),
            valid_skin: Tensor | None = None, size: int | None = None) -> Delit:
    """Split the photo's departure from a smooth skin prior into albedo detail and shading.

    Args:
        prep: the photo's prepared G-buffer (``P`` covered pixels).
        target_srgb: ``[1, P, 3]`` the photo at those pixels, sRGB in [0, 1].
        maps: the latent phase's maps (albedo ``[1, 3, Sa, Sa]`` linear in [0, 1]).
        light: ``[1, 3, 9]`` SH radiance (linear, camera frame) the maps were fitted with.
        roughness, spec_model: the renderer's settings used in the fit.
        settings: :class:`DelightSettings`.
        valid_skin: ``[1, 1, Ht, Wt]`` T's valid-skin mask, for the out-of-range count
            (default: the layout's skin region).
        size: side S of the delit albedo (default ``Sa``).

    Returns:
        :class:`Delit`.
    """
    if prep.index.shape[0] != 1:
        raise ValueError(f"delight works on one photo, got a batch of {prep.index.shape[0]}")
    size = int(size or maps.albedo.shape[-1])
    dtype, dev = maps.albedo.dtype, maps.albedo.device
    with torch.no_grad():
        skin_all, lips, layout, eyes = (m[0] for m in _layout_masks(size, dev, dtype))
        # plain skin: where the detail is limited and the shading residual is measured;
        # the lips, like the eyes, brows and mouth, take the photo's own colour
        skin = skin_all * (1 - lips)
        sigma_s = settings.shading_sigma * size
        sigma_p = (settings.prior_sigma or settings.shading_sigma) * size
        # the prior: the latent albedo over the skin, smoothed at the shading scale (the
        # networks' drawn eyes, brows and mouth do not survive it; their mean does)
        a0 = F.interpolate(maps.albedo, size=(size, size), mode="bilinear", align_corners=False)[0]
        log_a0 = torch.log(a0.clamp_min(1e-3))
        log_prior, den_p = normalized_blur(log_a0 * skin, skin, sigma_p)
        # far from the skin (layout corners) the prior fades to the skin's mean colour
        mean_log = (log_a0 * skin).sum((1, 2), keepdim=True) / skin.sum().clamp_min(1.0)
        fade = (den_p / den_p.amax().clamp_min(1e-8) / 0.2).clamp(0, 1)
        log_prior = fade * log_prior + (1 - fade) * mean_log
        uv = prep.uv[0]
        grid = torch.stack([uv[:, 0] * 2 - 1, 1 - uv[:, 1] * 2], -1).view(1, 1, -1, 2).to(dtype)
        prior_p = F.grid_sample(log_prior[None], grid, mode="bilinear", padding_mode="border",
                                align_corners=False)[0, :, 0].T
        skin_p = F.grid_sample(skin[None], grid, mode="nearest", padding_mode="zeros",
                               align_corners=False)[0, 0, 0]
        if settings.eye_specular_margin > 0:
            cap = eye_specular_cap(prep, target_srgb, maps, light, roughness, spec_model,
                                   settings.eye_specular_margin)
            if cap is not None:
                maps = ReflectanceMaps(maps.albedo, cap_eye_specular(maps.specular, cap), maps.normal)
        # the latent phase leaves a per-channel mean misfit over the skin: the light takes it
        # (the albedo keeps its gauge, the shading residual stays free of a constant cast)
        a, w = _observed(prep, target_srgb, maps, light, roughness, spec_model, settings)
        ws = w * skin_p
        if settings.adjust_light and float(ws.sum()) > 0:
            mean = ((torch.log(a.clamp(1e-3, 4.0)) - prior_p) * ws[:, None]).sum(0) / ws.sum()
            light = light * torch.exp(mean.clamp(-2.0, 2.0)).view(1, 3, 1)
            a, w = _observed(prep, target_srgb, maps, light, roughness, spec_model, settings)
        covered = (prep.index[0] < prep.height * prep.width).to(dtype)
        r = torch.log(a.clamp(1e-3, 4.0)) - prior_p
        num, den = splat_to_uv(uv, r, w, size)
        # every covered pixel, unweighted and unclamped: what the reconstruction must show
        num_all, den_all = splat_to_uv(uv, torch.log(a.clamp(1e-3, 100.0)) - prior_p, covered, size)

        # detail scale: about one texel when the photo samples the layout at least once per
        # texel, wider when it is coarser (normalized convolution fills the gaps)
        px_per_texel = float(covered.sum()) / max(float((layout > 0.5).sum()), 1.0)
        sigma_d = 0.7 / math.sqrt(min(max(4 * px_per_texel, 0.05), 1.0))
        inside = (eyes > 0.5).to(dtype)  # the eye openings
        if settings.eyes_apart:
            # the eye openings are filled only from their own pixels: the lids around them
            # are seen far better, and would otherwise spread into the eyes with confidence
            r_e, den_e = normalized_blur(num * inside, den * inside, sigma_d)
            r_o, den_o = normalized_blur(num * (1 - inside), den * (1 - inside), sigma_d)
            r_d = inside * r_e + (1 - inside) * r_o
            den_d = inside * den_e + (1 - inside) * den_o
        else:
            r_d, den_d = normalized_blur(num, den, sigma_d)
        r_s, den_s = normalized_blur(num * skin, den * skin, sigma_s)
        r_all, den_all = normalized_blur(num_all, den_all, sigma_d)
        # confidence: the local weight density against that of a typical seen texel (of
        # the unweighted splat, so dim or grazing texels count as poorly seen)
        seen = (den_all > 1e-3) & (layout > 0.5)
        typical = float(den_all[seen].median()) if bool(seen.any()) else 1.0
        conf = (den_d / max(0.3 * typical, 1e-6)).clamp(0, 1) * layout
        covered_uv = (den_all / max(0.3 * typical, 1e-6)).clamp(0, 1)
        detail = r_d - r_s
        detail = torch.where(skin > 0.5, _limit(detail, settings.detail_limit, settings.chroma_limit),
                             detail.clamp(-3.0, 3.0))
        if settings.mirror:
            m_conf = conf.flip(-1)
            detail = conf * detail + (1 - conf) * m_conf * detail.flip(-1)
            conf = conf + (1 - conf) * m_conf
        else:
            detail = conf * detail
        rim = round(settings.eye_rim * size)
        if rim > 0:
            # the openings' edge is the lid margin, which the fitted mesh places poorly:
            # its photo colours (its own or the mirrored texel's) count as unseen
            core = -F.max_pool2d(-inside[None], 2 * rim + 1, stride=1, padding=rim)[0]
            edge = (inside - core).clamp(0, 1)
            detail, conf = detail * (1 - edge), conf * (1 - edge)
        if settings.unseen_features == "latent":
            # the eyes, brows and inner mouth that neither the photo nor the mirror shows
            # take the networks' drawn features rather than the smoothed skin
            features = layout * (1 - skin_all)
            detail = detail + (1 - conf) * features * (log_a0 - log_prior)
        albedo = torch.exp(log_prior + detail).clamp(0, 1)[None]
        valid = skin_all[None] if valid_skin is None else (
            F.interpolate(valid_skin, size=(size, size), mode="nearest") * skin_all[None])
        bad_before = 0.0
        if float(valid.sum()) > 0:
            bad_before = float(skin_range_violations(albedo, valid).sum() / (valid > 0.5).sum())
        if settings.skin_range:
            albedo = torch.where(skin_all[None] > 0.5, project_to_skin(albedo), albedo.clamp(0.003, 0.95))
        # shading residual: where the photo shows the texel, all that the albedo does not
        # explain (the slow part r_s, detail beyond the limit or from untrusted pixels, what
        # the range projection and the clamp removed); elsewhere r_s, fading to none away
        # from seen skin
        reach = (den_s / den_s.amax().clamp_min(1e-8)).clamp(0, 1).sqrt()
        seen_log = log_prior + r_all - torch.log(albedo[0].clamp_min(1e-3))
        shading_log = covered_uv * seen_log + (1 - covered_uv) * r_s * reach
        shading = torch.exp(shading_log.clamp(-6.0, 4.0))[None]
    out = ReflectanceMaps(albedo.to(dtype), maps.specular, maps.normal)
    return Delit(out, light, shading, conf[None], bad_before)
