"""Physically based shading of facial reflectance under SH lighting (paper §6.1).

Per pixel, in linear light (equation 5)::

    I = t_a · (1 − t_r) · L_d + L_s

* ``L_d`` (equations 6–7) is the diffuse radiance of a white Lambertian surface with
  self-occlusion: the lighting ``z`` and the per-texel visibility ``v`` (both SH, camera
  frame) are combined with Snyder's triple product into ``w = T(z, v)``, then convolved
  with the clamped cosine and evaluated at the shading normal:
  ``L_d = (1/π) Σ_k A_l(k) w_k Y_k(n)``. Without visibility, ``w = z``.
* ``L_s`` (equations 8–12) uses the split-sum factorization
  ``L_s = SO · (F0·A + f90·B)(n·v, r) · L_pre``, where ``(A, B)`` is the pre-integrated
  DFG table (:mod:`facerefl.render.brdf`), ``SO`` the specular occlusion from the bent
  normal, and the pre-filtered radiance ``L_pre`` is one of two forms:

  - ``"paper"``: equation 12 as written: the clamped-cosine coefficients reused for the
    specular light, evaluated at the normal, i.e. ``L_pre = E(n)/π`` (unoccluded).
  - ``"lobe"``: the radiance convolved with the zonal SH factors ``g_l(r)`` of the GGX
    reflection lobe, evaluated at the dominant specular direction (the reflection vector
    bent towards the normal as roughness grows, Lagarde & de Rousiers 2014).

  The default is ``"lobe"``: against Monte Carlo GGX under SH lighting it is several
  times more accurate than ``"paper"`` over roughness 0.2–0.8 and view angles 0–75°
  (``python -m facerefl.render.validate`` prints both; numbers in the validation
  report). The paper form ignores where the lobe points and how wide it is, so it is
  only right for a view-independent, very rough lobe.
* Specular occlusion (paper §4: the bent normal "affects the amount of specular
  occlusion") follows the cone–cone approximation of Oat & Sander 2007 as used by
  Lagarde & de Rousiers 2014: visibility is a cone around the bent normal whose
  cosine-weighted solid angle equals the ambient occlusion ``AO`` (itself the occluded
  irradiance of unit light, from the visibility SH), so its half-angle has
  ``cos θ_v = sqrt(1 − AO)``; the specular lobe is a cone around the dominant direction
  whose mean cosine matches the lobe's first Legendre moment, ``cos θ_s = 2 g_1(r) − 1``.
  ``SO`` is the (smoothstep-approximated) solid angle of their intersection, divided by
  the same quantity for an unoccluded texel (a hemisphere cone around ``n``), so a fully
  visible texel gets exactly ``SO = 1`` and the horizon, already in the DFG term, is not
  counted twice.
* Tangent-space normal maps (x along T, y along B, z along N) perturb the interpolated
  mesh normal: ``n = normalize(T x + B y + N z)``. The bent normal (tangent space too)
  is brought to the camera frame with the unperturbed mesh frame it was baked in.

Tensors here are channels-last ``[B, *, C]`` (``*`` any pixel layout, e.g. ``H, W`` or a
gathered list ``P``); lighting is ``[B, 3, 9]``; everything is in the camera frame and
linear RGB. All functions are differentiable w.r.t. every texture and the lighting.

For fitting, :func:`prepare_gbuffer` gathers the covered pixels of a G-buffer once,
together with everything that does not change while the textures and lighting are
optimized (frames, baked visibility and bent normals), and :func:`shade_prepared`
shades only those pixels (about half of a portrait) and scatters them back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from facerefl.render.brdf import (
    DEFAULT_ROUGHNESS,
    dfg_lookup,
    f0_from_specular,
    f90_from_f0,
    lobe_band_factors,
)
from facerefl.render.color import linear_to_srgb
from facerefl.render.raster import GBuffer
from facerefl.render.sh import (
    COSINE_BAND_WEIGHTS,
    SH_COUNT,
    expand_bands,
    sh_monomials,
    sh_polynomial,
    sh_product_matrix,
)
from facerefl.render.texture import sample_texture

__all__ = [
    "SPEC_MODELS",
    "DEFAULT_SPEC_MODEL",
    "Shading",
    "PreparedGBuffer",
    "tangent_to_camera",
    "perturb_normal",
    "reflect",
    "dominant_direction",
    "diffuse_radiance",
    "ambient_occlusion",
    "specular_occlusion",
    "specular_radiance",
    "shade",
    "shade_gbuffer",
    "prepare_gbuffer",
    "shade_prepared",
]

SPEC_MODELS = ("lobe", "paper")
DEFAULT_SPEC_MODEL = "lobe"

_EPS = 1e-6


@dataclass(frozen=True)
class Shading:
    """Result of :func:`shade` (all linear RGB, same pixel layout as the inputs).

    Attributes:
        rgb: ``[B, *, 3]`` radiance ``t_a (1 − t_r) L_d + L_s``.
        diffuse: ``[B, *, 3]`` the diffuse part ``t_a (1 − t_r) L_d``.
        specular: ``[B, *, 3]`` the specular part ``L_s``.
    """

    rgb: Tensor
    diffuse: Tensor
    specular: Tensor

    def srgb(self) -> Tensor:
        """``rgb`` encoded as sRGB and clamped to [0, 1] (for display and photo losses)."""
        return linear_to_srgb(self.rgb)


# ----------------------------------------------------------------------------- checks


def _check_pixels(name: str, t: Tensor, lead: tuple[int, ...], channels: int) -> None:
    if t.shape[-1:] != (channels,) or tuple(t.shape[:-1]) != lead:
        want = ", ".join(str(s) for s in lead)
        raise ValueError(f"{name} must have shape [{want}, {channels}], got {tuple(t.shape)}")


def _lead(name: str, t: Tensor, channels: int) -> tuple[int, ...]:
    """Leading ``(B, *)`` dims of a per-pixel tensor ``[B, *, channels]``."""
    if t.dim() < 3 or t.shape[-1] != channels:
        raise ValueError(f"{name} must have shape [B, *, {channels}] (at least one pixel dim), got {tuple(t.shape)}")
    return tuple(t.shape[:-1])


def _check_light(light: Tensor, batch: int) -> None:
    if light.dim() != 3 or light.shape[1:] != (3, SH_COUNT) or light.shape[0] != batch:
        raise ValueError(f"light must have shape [B={batch}, 3, 9], got {tuple(light.shape)}")


def _check_spec_model(spec_model: str) -> None:
    if spec_model not in SPEC_MODELS:
        raise ValueError(f"spec_model must be one of {SPEC_MODELS}, got {spec_model!r}")


# ----------------------------------------------------------------------- small pieces


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).sum(-1, keepdim=True)


def tangent_to_camera(vec_ts: Tensor, tangent: Tensor, bitangent: Tensor, normal: Tensor) -> Tensor:
    """Tangent-space vectors ``[..., 3]`` (x along T, y along B, z along N) to the camera
    frame (not renormalized). All inputs ``[..., 3]``, broadcastable."""
    x, y, z = vec_ts.split(1, dim=-1)
    return tangent * x + bitangent * y + normal * z


def perturb_normal(normal: Tensor, tangent: Tensor, bitangent: Tensor, normal_ts: Tensor) -> Tensor:
    """Apply a tangent-space normal map on top of the interpolated mesh normal.

    Args:
        normal, tangent, bitangent: ``[..., 3]`` unit mesh frame, camera frame.
        normal_ts: ``[..., 3]`` tangent-space normal (OpenGL/green-up), need not be unit.

    Returns:
        ``[..., 3]`` unit shading normal, camera frame.
    """
    return F.normalize(tangent_to_camera(normal_ts, tangent, bitangent, normal), dim=-1, eps=_EPS)


def reflect(view_dir: Tensor, normal: Tensor) -> Tensor:
    """Mirror direction of ``view_dir`` (surface→camera) about ``normal``; ``[..., 3]``."""
    return 2.0 * _dot(normal, view_dir) * normal - view_dir


def dominant_direction(normal: Tensor, view_dir: Tensor, roughness: float | Tensor) -> Tensor:
    """Dominant direction of the GGX specular lobe, ``[..., 3]`` unit.

    Lagarde & de Rousiers 2014: ``normalize(lerp(n, R, s))`` with
    ``s = (1 − α)(sqrt(1 − α) + α)``, α = r², which moves the lobe towards the normal
    as it widens (the off-specular peak). ``roughness`` is a scalar or ``[..., 1]``.
    """
    r = roughness.clamp(0.0, 1.0) if isinstance(roughness, Tensor) else min(max(float(roughness), 0.0), 1.0)
    a = r * r
    smooth = 1.0 - a
    s = smooth * ((smooth ** 0.5) + a)
    refl = reflect(view_dir, normal)
    return F.normalize(normal + s * (refl - normal), dim=-1, eps=_EPS)


def _flat(t: Tensor, channels: int) -> Tensor:
    return t.reshape(t.shape[0], -1, channels)


def _cosine_basis(normal: Tensor) -> Tensor:
    """``[..., 9]`` basis at the normal times the clamped-cosine factors divided by π."""
    w, b = sh_polynomial(normal.dtype, normal.device)
    cw = expand_bands(torch.tensor([c / math.pi for c in COSINE_BAND_WEIGHTS], dtype=normal.dtype, device=normal.device))
    return sh_monomials(normal) @ (w * cw) + b * cw


def _radiance_at(dirs: Tensor, coeffs: Tensor) -> Tensor:
    """``Σ_k coeffs[b, c, k] Y_k(dirs)`` → ``[B, N, 3]`` without forming the basis:
    the lighting is folded into the polynomial form of the basis."""
    w, b = sh_polynomial(dirs.dtype, dirs.device)
    ct = coeffs.transpose(1, 2)  # [B, 9, C]
    return torch.baddbmm((b @ ct).unsqueeze(1), sh_monomials(dirs), w @ ct)


def _diffuse_flat(ycos: Tensor, light: Tensor, vis_sh: Tensor | None) -> Tensor:
    """``[B, N, 3]`` from the cosine basis ``[B, N, 9]``, light and optional visibility."""
    if vis_sh is None:
        return ycos @ light.transpose(1, 2)
    b = light.shape[0]
    m = sh_product_matrix(light)  # [B, 3, 9(j), 9(k)]: w_ck = Σ_j v_j m[c, j, k]
    u = vis_sh @ m.permute(0, 2, 1, 3).reshape(b, SH_COUNT, 3 * SH_COUNT)  # [B, N, 27]
    return (u.view(b, -1, 3, SH_COUNT) * ycos.unsqueeze(-2)).sum(-1)


def diffuse_radiance(normal: Tensor, light: Tensor, vis_sh: Tensor | None = None) -> Tensor:
    """Diffuse radiance ``L_d`` of a white Lambertian surface (equations 6–7).

    Args:
        normal: ``[B, *, 3]`` unit shading normals, camera frame.
        light: ``[B, 3, 9]`` SH incident radiance, linear RGB, camera frame.
        vis_sh: ``[B, *, 9]`` SH visibility (camera frame), or None for no occlusion.

    Returns:
        ``[B, *, 3]`` linear radiance; 1 for unit constant light without occlusion.
    """
    lead = _lead("normal", normal, 3)
    _check_light(light, lead[0])
    if vis_sh is not None:
        _check_pixels("vis_sh", vis_sh, lead, SH_COUNT)
        vis_sh = _flat(vis_sh, SH_COUNT)
    out = _diffuse_flat(_cosine_basis(_flat(normal, 3)), light, vis_sh)
    return out.reshape(*lead, 3)


def ambient_occlusion(normal: Tensor, vis_sh: Tensor) -> Tensor:
    """Cosine-weighted visibility ``(1/π) ∫ V max(0, n·ω) dω`` from SH, ``[..., 1]`` in [0, 1].

    Args:
        normal: ``[..., 3]`` unit normals; vis_sh: ``[..., 9]`` visibility SH (same frame).
    """
    ycos = _cosine_basis(normal)
    return (ycos * vis_sh).sum(-1, keepdim=True).clamp(0.0, 1.0)


def _cone_overlap(cos_a: Tensor, cos_b: Tensor, cos_d: Tensor) -> Tensor:
    """Approximate solid angle (sr) of the intersection of two cones with half-angle
    cosines ``cos_a``, ``cos_b`` and axes ``acos(cos_d)`` apart (Oat & Sander 2007)."""
    lim = 1.0 - 1e-6
    ta = torch.acos(cos_a.clamp(-lim, lim))
    tb = torch.acos(cos_b.clamp(-lim, lim))
    d = torch.acos(cos_d.clamp(-lim, lim))
    small = torch.minimum(ta, tb)
    gap = (ta - tb).abs()
    t = (1.0 - (d - gap) / (ta + tb - gap).clamp_min(1e-4)).clamp(0.0, 1.0)
    return 2.0 * math.pi * (1.0 - torch.cos(small)) * (t * t * (3.0 - 2.0 * t))


def specular_occlusion(
    normal: Tensor, view_dir: Tensor, vis_sh: Tensor, bent_normal: Tensor, roughness: float | Tensor
) -> Tensor:
    """Specular occlusion from visibility SH and the bent normal (module docstring).

    Args:
        normal: ``[..., 3]`` unit shading normal; view_dir: ``[..., 3]`` unit, to camera.
        vis_sh: ``[..., 9]`` visibility SH; bent_normal: ``[..., 3]`` unit, camera frame.
        roughness: scalar or ``[..., 1]``.

    Returns:
        ``[..., 1]`` factor in [0, 1]; exactly 1 when the texel is unoccluded.
    """
    ao = ambient_occlusion(normal, vis_sh)
    if isinstance(roughness, Tensor):
        g1 = lobe_band_factors(roughness[..., 0])[..., 1:2]
    else:
        g1 = lobe_band_factors(roughness, dtype=normal.dtype, device=normal.device)[1:2]
    cos_s = 2.0 * g1 - 1.0
    axis = dominant_direction(normal, view_dir, roughness)
    cos_v = torch.sqrt((1.0 - ao).clamp_min(0.0))
    occluded = _cone_overlap(cos_v, cos_s, _dot(bent_normal, axis))
    open_ = _cone_overlap(torch.zeros_like(cos_v), cos_s, _dot(normal, axis))
    return (occluded / open_.clamp_min(1e-8)).clamp(0.0, 1.0)


def _roughness_flat(roughness: float | Tensor, lead: tuple[int, ...]) -> float | Tensor:
    """Scalar roughness stays a float; tensors become ``[B, N, 1]``."""
    if not isinstance(roughness, Tensor):
        return float(roughness)
    if roughness.dim() == 0:
        return roughness.reshape(1, 1, 1).expand(lead[0], math.prod(lead[1:]), 1)
    _check_pixels("roughness", roughness, lead, 1)
    return _flat(roughness, 1)


def _specular_flat(
    normal: Tensor,
    view_dir: Tensor,
    light: Tensor,
    f0: Tensor,
    roughness: float | Tensor,
    spec_model: str,
    ycos: Tensor,
) -> Tensor:
    """Unoccluded ``L_s`` ``[B, N, 3]`` (flat layout)."""
    n_dot_v = _dot(normal, view_dir).clamp(0.0, 1.0)
    r_pix = roughness[..., 0] if isinstance(roughness, Tensor) else roughness
    dfg = dfg_lookup(n_dot_v[..., 0], r_pix)
    scale = f0 * dfg[..., :1] + f90_from_f0(f0) * dfg[..., 1:]
    if spec_model == "paper":
        pre = ycos @ light.transpose(1, 2)
    elif isinstance(roughness, Tensor):
        axis = dominant_direction(normal, view_dir, roughness)
        g = expand_bands(lobe_band_factors(roughness[..., 0]))
        w, b = sh_polynomial(axis.dtype, axis.device)
        pre = (torch.addmm(b, sh_monomials(axis).reshape(-1, 12), w).view_as(g) * g) @ light.transpose(1, 2)
    else:
        axis = dominant_direction(normal, view_dir, roughness)
        g = expand_bands(lobe_band_factors(roughness, dtype=light.dtype, device=light.device))
        pre = _radiance_at(axis, light * g)
    return scale * pre


def specular_radiance(
    normal: Tensor,
    view_dir: Tensor,
    light: Tensor,
    specular: Tensor,
    roughness: float | Tensor = DEFAULT_ROUGHNESS,
    spec_model: str = DEFAULT_SPEC_MODEL,
) -> Tensor:
    """Unoccluded specular radiance ``L_s`` (split sum, see module docstring).

    Args:
        normal: ``[B, *, 3]`` unit shading normal, camera frame.
        view_dir: ``[B, *, 3]`` unit surface→camera direction.
        light: ``[B, 3, 9]`` SH incident radiance (linear RGB).
        specular: ``[B, *, 1]`` specular map value ``t_r`` in [0, 1].
        roughness: scalar or ``[B, *, 1]`` perceptual roughness.
        spec_model: ``"lobe"`` or ``"paper"``.

    Returns:
        ``[B, *, 3]`` linear radiance.
    """
    lead = _lead("normal", normal, 3)
    _check_pixels("view_dir", view_dir, lead, 3)
    _check_pixels("specular", specular, lead, 1)
    _check_light(light, lead[0])
    _check_spec_model(spec_model)
    n = _flat(normal, 3)
    out = _specular_flat(
        n, _flat(view_dir, 3), light, f0_from_specular(_flat(specular, 1)),
        _roughness_flat(roughness, lead), spec_model, _cosine_basis(n),
    )
    return out.reshape(*lead, 3)


def shade(
    normal: Tensor,
    tangent: Tensor,
    bitangent: Tensor,
    view_dir: Tensor,
    albedo: Tensor,
    specular: Tensor,
    light: Tensor,
    normal_ts: Tensor | None = None,
    vis_sh: Tensor | None = None,
    bent_normal_ts: Tensor | None = None,
    roughness: float | Tensor = DEFAULT_ROUGHNESS,
    spec_model: str = DEFAULT_SPEC_MODEL,
) -> Shading:
    """Shade pixels: ``I = t_a (1 − t_r) L_d + L_s`` in linear light (equation 5).

    Args:
        normal, tangent, bitangent: ``[B, *, 3]`` unit mesh frame (camera frame), e.g.
            from a :class:`~facerefl.render.raster.GBuffer`.
        view_dir: ``[B, *, 3]`` unit surface→camera direction.
        albedo: ``[B, *, 3]`` linear albedo ``t_a`` in [0, 1].
        specular: ``[B, *, 1]`` specular intensity ``t_r`` in [0, 1] (F0 = 0.08 t_r).
        light: ``[B, 3, 9]`` SH incident radiance, linear RGB, camera frame.
        normal_ts: ``[B, *, 3]`` tangent-space normal map value, or None (mesh normal).
        vis_sh: ``[B, *, 9]`` baked visibility SH (camera frame), or None (unoccluded).
        bent_normal_ts: ``[B, *, 3]`` baked tangent-space bent normal, or None (no
            specular occlusion). Used only together with ``vis_sh``.
        roughness: scalar or ``[B, *, 1]`` perceptual roughness (α = r²).
        spec_model: ``"lobe"`` (default) or ``"paper"``.

    Returns:
        :class:`Shading` with ``[B, *, 3]`` members.

    >>> px = lambda *v: torch.tensor(v).expand(1, 4, len(v))
    >>> light = torch.zeros(1, 3, 9); light[:, :, 0] = 2 * math.pi ** 0.5  # unit radiance
    >>> out = shade(px(0., 0, 1), px(1., 0, 0), px(0., 1, 0), px(0., 0, 1),
    ...             px(1., 1, 1), px(0.), light)
    >>> round(out.rgb.mean().item(), 4)
    1.0
    """
    lead = _lead("normal", normal, 3)
    for name, t, c in (
        ("normal", normal, 3), ("tangent", tangent, 3), ("bitangent", bitangent, 3),
        ("view_dir", view_dir, 3), ("albedo", albedo, 3), ("specular", specular, 1),
    ):
        _check_pixels(name, t, lead, c)
    for name, t, c in (("normal_ts", normal_ts, 3), ("vis_sh", vis_sh, SH_COUNT), ("bent_normal_ts", bent_normal_ts, 3)):
        if t is not None:
            _check_pixels(name, t, lead, c)
    _check_light(light, lead[0])
    _check_spec_model(spec_model)
    fl = [_flat(t, 3) for t in (normal, tangent, bitangent, view_dir)]
    vis = None if vis_sh is None else _flat(vis_sh, SH_COUNT)
    rough = _roughness_flat(roughness, lead)
    occ = None
    if vis is not None and bent_normal_ts is not None:
        bent = tangent_to_camera(_flat(bent_normal_ts, 3), fl[1], fl[2], fl[0])
        occ = specular_occlusion(fl[0], fl[3], vis, F.normalize(bent, dim=-1, eps=_EPS), rough)
    out = _shade_flat(
        fl[0], fl[1], fl[2], fl[3], _flat(albedo, 3), _flat(specular, 1), light,
        None if normal_ts is None else _flat(normal_ts, 3), vis, occ, rough, spec_model,
    )
    return Shading(*(t.reshape(*lead, 3) for t in out))


def _shade_flat(
    normal: Tensor,
    tangent: Tensor,
    bitangent: Tensor,
    view_dir: Tensor,
    albedo: Tensor,
    specular: Tensor,
    light: Tensor,
    normal_ts: Tensor | None,
    vis_sh: Tensor | None,
    spec_occlusion: Tensor | None,
    roughness: float | Tensor,
    spec_model: str,
) -> tuple[Tensor, Tensor, Tensor]:
    """Core of :func:`shade` on flat ``[B, N, C]`` tensors (``spec_occlusion [B, N, 1]``)."""
    n = normal if normal_ts is None else perturb_normal(normal, tangent, bitangent, normal_ts)
    ycos = _cosine_basis(n)
    l_d = _diffuse_flat(ycos, light, vis_sh)
    f0 = f0_from_specular(specular)
    l_s = _specular_flat(n, view_dir, light, f0, roughness, spec_model, ycos)
    if spec_occlusion is not None:
        l_s = l_s * spec_occlusion
    diffuse = albedo * (1.0 - specular) * l_d
    return diffuse + l_s, diffuse, l_s


# --------------------------------------------------------------------- G-buffer paths


def _sample_optional(tex: Tensor | None, uv: Tensor, name: str, channels: int) -> Tensor | None:
    if tex is None:
        return None
    if tex.dim() != 4 or tex.shape[1] != channels:
        raise ValueError(f"{name} must have shape [B, {channels}, Ht, Wt], got {tuple(tex.shape)}")
    return sample_texture(tex, uv)


def _roughness_pixels(roughness: float | Tensor, uv: Tensor) -> float | Tensor:
    if isinstance(roughness, Tensor) and roughness.dim() == 4:
        return _sample_optional(roughness, uv, "roughness", 1)
    return roughness


def _safe_frame(gbuf: GBuffer) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """G-buffer frame with empty pixels replaced by a valid one (no NaN anywhere)."""
    m = gbuf.mask > 0.5
    one = torch.ones_like(gbuf.normal[..., :1])
    zero = torch.zeros_like(one)
    z = torch.cat([zero, zero, one], -1)
    x = torch.cat([one, zero, zero], -1)
    y = torch.cat([zero, one, zero], -1)
    return (
        torch.where(m, gbuf.normal, z), torch.where(m, gbuf.tangent, x),
        torch.where(m, gbuf.bitangent, y), torch.where(m, gbuf.view_dir, z),
    )


def shade_gbuffer(
    gbuf: GBuffer,
    albedo: Tensor,
    specular: Tensor,
    light: Tensor,
    normal: Tensor | None = None,
    vis_sh: Tensor | None = None,
    bent_normal: Tensor | None = None,
    roughness: float | Tensor = DEFAULT_ROUGHNESS,
    spec_model: str = DEFAULT_SPEC_MODEL,
) -> Shading:
    """Shade a whole G-buffer from UV maps (the reference path; see :func:`shade_prepared`).

    Args:
        gbuf: G-buffer ``[B, H, W]`` (camera frame).
        albedo: ``[B, 3, Ht, Wt]`` linear albedo map; specular: ``[B, 1, Ht, Wt]`` t_r.
        light: ``[B, 3, 9]`` SH lighting.
        normal: ``[B, 3, Ht, Wt]`` tangent-space normal map, or None.
        vis_sh: ``[B, 9, Ht, Wt]`` baked visibility SH map, or None.
        bent_normal: ``[B, 3, Ht, Wt]`` baked tangent-space bent normal map, or None.
        roughness: scalar, ``[B, 1, Ht, Wt]`` map, or ``[B, H, W, 1]`` per pixel.
        spec_model: ``"lobe"`` or ``"paper"``.

    Returns:
        :class:`Shading` with ``[B, H, W, 3]`` images, 0 outside ``gbuf.mask``.
    """
    uv = gbuf.uv
    n, t, b, v = _safe_frame(gbuf)
    out = shade(
        n, t, b, v,
        _sample_optional(albedo, uv, "albedo", 3),
        _sample_optional(specular, uv, "specular", 1),
        light,
        normal_ts=_sample_optional(normal, uv, "normal", 3),
        vis_sh=_sample_optional(vis_sh, uv, "vis_sh", SH_COUNT),
        bent_normal_ts=_sample_optional(bent_normal, uv, "bent_normal", 3),
        roughness=_roughness_pixels(roughness, uv),
        spec_model=spec_model,
    )
    m = gbuf.mask
    return Shading(out.rgb * m, out.diffuse * m, out.specular * m)


@dataclass(frozen=True)
class PreparedGBuffer:
    """The covered pixels of a G-buffer, gathered once for repeated shading.

    Everything that stays fixed while textures and lighting are optimized is stored
    per covered pixel: the mesh frame, the view direction, the UVs (ready for
    :func:`~facerefl.render.texture.sample_texture`), and the baked visibility SH and
    bent normal (sampled once, bent normal already in the camera frame). Batch elements
    with fewer covered pixels are padded; padded entries hold a harmless frame and are
    dropped when scattering back.

    Attributes:
        index: ``[B, P]`` int64 flat pixel index ``row·W + col``; padding holds ``H·W``.
        uv: ``[B, P, 2]`` texture coordinates.
        normal, tangent, bitangent, view_dir: ``[B, P, 3]`` unit, camera frame.
        vis_sh: ``[B, P, 9]`` or None.
        bent_normal: ``[B, P, 3]`` unit, camera frame, or None.
        spec_occlusion: ``[B, P, 1]`` specular occlusion for roughness
            ``occlusion_roughness`` (it depends only on baked data, the mesh frame and
            the roughness), or None without visibility/bent normal.
        occlusion_roughness: the scalar roughness ``spec_occlusion`` was computed for.
        height, width: image size.
    """

    index: Tensor
    uv: Tensor
    normal: Tensor
    tangent: Tensor
    bitangent: Tensor
    view_dir: Tensor
    vis_sh: Tensor | None
    bent_normal: Tensor | None
    spec_occlusion: Tensor | None
    occlusion_roughness: float
    height: int
    width: int

    def occlusion_for(self, roughness: float | Tensor) -> Tensor | None:
        """``[B, P, 1]`` specular occlusion for ``roughness`` (scalar or ``[B, P, 1]``);
        the cached one when it was prepared for the same scalar."""
        if self.spec_occlusion is None or self.bent_normal is None or self.vis_sh is None:
            return None
        if not isinstance(roughness, Tensor) and float(roughness) == self.occlusion_roughness:
            return self.spec_occlusion
        return specular_occlusion(self.normal, self.view_dir, self.vis_sh, self.bent_normal, roughness)

    @property
    def num_pixels(self) -> int:
        """P, the (padded) number of gathered pixels per batch element."""
        return self.index.shape[1]

    def gather(self, image: Tensor) -> Tensor:
        """Pick the covered pixels of an image ``[B, H, W, C]`` → ``[B, P, C]`` (padding: 0)."""
        b, h, w, c = image.shape
        if (h, w) != (self.height, self.width) or b != self.index.shape[0]:
            raise ValueError(
                f"image must have shape [{self.index.shape[0]}, {self.height}, {self.width}, C], "
                f"got {tuple(image.shape)}"
            )
        flat = torch.cat([image.reshape(b, h * w, c), image.new_zeros(b, 1, c)], dim=1)
        return flat.gather(1, self.index.unsqueeze(-1).expand(-1, -1, c))

    def scatter(self, values: Tensor) -> Tensor:
        """Put per-pixel values ``[B, P, C]`` back into an image ``[B, H, W, C]`` (0 elsewhere)."""
        b, p, c = values.shape
        hw = self.height * self.width
        out = values.new_zeros(b, hw + 1, c).scatter(1, self.index.unsqueeze(-1).expand(-1, -1, c), values)
        return out[:, :hw].reshape(b, self.height, self.width, c)


def prepare_gbuffer(
    gbuf: GBuffer,
    vis_sh: Tensor | None = None,
    bent_normal: Tensor | None = None,
    roughness: float = DEFAULT_ROUGHNESS,
) -> PreparedGBuffer:
    """Gather the covered pixels of ``gbuf`` and the baked maps once.

    Args:
        gbuf: G-buffer ``[B, H, W]``.
        vis_sh: ``[B, 9, Ht, Wt]`` visibility SH map (camera frame), or None.
        bent_normal: ``[B, 3, Ht, Wt]`` tangent-space bent normal map, or None.
        roughness: scalar roughness for which the specular occlusion is precomputed
            (others are handled, just not cached).

    Returns:
        :class:`PreparedGBuffer`. Baked maps are detached (they are not optimized).
    """
    b, h, w = gbuf.shape
    covered = gbuf.mask[..., 0].reshape(b, h * w) > 0.5
    counts = covered.sum(1)
    p = max(int(counts.max()), 1)
    # stable sort puts covered pixels first, in raster order
    order = torch.sort((~covered).to(torch.uint8), dim=1, stable=True).indices[:, :p]
    keep = torch.arange(p, device=order.device)[None] < counts[:, None]
    index = torch.where(keep, order, torch.full_like(order, h * w))
    safe = _safe_frame(gbuf)

    def pick(img: Tensor) -> Tensor:
        c = img.shape[-1]
        flat = torch.cat([img.reshape(b, h * w, c), img.new_zeros(b, 1, c)], dim=1)
        return flat.gather(1, index.clamp_max(h * w - 1).unsqueeze(-1).expand(-1, -1, c))

    n, t, bt, v = (pick(x) for x in safe)
    uv = pick(gbuf.uv)
    vis = None if vis_sh is None else _sample_optional(vis_sh.detach(), uv, "vis_sh", SH_COUNT)
    bent = None
    if bent_normal is not None:
        bent_ts = _sample_optional(bent_normal.detach(), uv, "bent_normal", 3)
        bent = F.normalize(tangent_to_camera(bent_ts, t, bt, n), dim=-1, eps=_EPS)
    occ = None
    if vis is not None and bent is not None:
        occ = specular_occlusion(n, v, vis, bent, float(roughness))
    return PreparedGBuffer(index, uv, n, t, bt, v, vis, bent, occ, float(roughness), h, w)


def shade_prepared(
    prep: PreparedGBuffer,
    albedo: Tensor,
    specular: Tensor,
    light: Tensor,
    normal: Tensor | None = None,
    roughness: float | Tensor = DEFAULT_ROUGHNESS,
    spec_model: str = DEFAULT_SPEC_MODEL,
    to_image: bool = True,
) -> Shading:
    """Fast path of :func:`shade_gbuffer`: shade only the gathered pixels.

    Args:
        prep: from :func:`prepare_gbuffer`.
        albedo: ``[B, 3, Ht, Wt]``; specular: ``[B, 1, Ht, Wt]``; normal: ``[B, 3, Ht, Wt]``
            tangent-space map or None; roughness: scalar or ``[B, 1, Ht, Wt]`` map.
        light: ``[B, 3, 9]``.
        spec_model: ``"lobe"`` or ``"paper"``.
        to_image: scatter to ``[B, H, W, 3]`` images (else return ``[B, P, 3]``).

    Returns:
        :class:`Shading`.
    """
    _check_light(light, prep.index.shape[0])
    _check_spec_model(spec_model)
    uv = prep.uv
    rough = _roughness_flat(_roughness_pixels(roughness, uv), tuple(uv.shape[:-1]))
    out = _shade_flat(
        prep.normal, prep.tangent, prep.bitangent, prep.view_dir,
        _sample_optional(albedo, uv, "albedo", 3),
        _sample_optional(specular, uv, "specular", 1),
        light,
        _sample_optional(normal, uv, "normal", 3),
        prep.vis_sh, prep.occlusion_for(rough), rough, spec_model,
    )
    if to_image:
        out = tuple(prep.scatter(t) for t in out)
    return Shading(*out)
