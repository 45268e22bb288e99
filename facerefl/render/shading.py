"""Physically based shading of facial reflectance under SH lighting (paper §6.1).

Per pixel, in linear light (equation 5)::

    I = t_a · (1 − t_r) · L_d + L_s

* ``L_d`` (equations 6–7) is the diffuse radiance of a white Lambertian surface with
  self-occlusion: the lighting ``z`` and the per-texel visibility ``v`` (both SH, camera
  frame) are combined with Snyder's triple product into ``w = T(z, v)``, then convolved
  with the clamped cosine and evaluated at the shading normal:
  ``L_d = (1/π) Σ_k A_l(k) w_k Y_k(n)``. Without visibility, ``w = z``.
* ``L_s`` (equations 8–12) uses the split-sum factorization with the pre-integrated
  table of :mod:`facerefl.render.brdf`: ``∫ f_r (n·l) dl = F0·A + f90·B`` (the DFG
  term, equation 11) times a pre-filtered radiance, times the specular occlusion ``SO``
  from the bent normal. Two forms of the pre-filtered radiance:

  - ``"paper"``: equation 12 as written: the clamped-cosine coefficients reused for the
    specular light, evaluated at the normal: ``L_s = SO (F0·A + f90·B) E(n)/π``.
  - ``"lobe"``: ``L_s = SO (F0·A·L_A + f90·B·L_B)``, where ``L_A`` and ``L_B`` are the
    radiance seen through the F0- and f90-weighted GGX reflection lobes, each modelled
    as a zonal SH lobe (band factors ``1, g1, g2``) about its mean direction
    ``D = normalize(n + s (R − n))`` (R the mirror direction). ``s, g1, g2`` depend on
    ``n·v`` and roughness and are pre-integrated with the DFG terms; bands 0–1 of the
    true lobe are reproduced exactly and band 2 by its zonal part.

  The default is ``"lobe"`` because it is far closer to Monte Carlo GGX under SH lighting:
  over roughness 0.2–0.8, view angles 0–75° and t_r ∈ {0.1, 0.5}
  (``python -m facerefl.render.validate``) its mean relative error is 1.6 % (max 10 %)
  against 42 % (max 237 %) for ``"paper"``, which ignores where the lobe points and how
  wide it is. (A lobe with view-independent factors about the Lagarde–de Rousiers
  dominant direction, and a single lobe for both Fresnel parts, measured 8 % / 71 %.)
* Specular occlusion (paper §4: the bent normal "affects the amount of specular
  occlusion") follows the cone–cone approximation of Oat & Sander 2007 as used by
  Lagarde & de Rousiers 2014: visibility is a cone around the bent normal whose
  cosine-weighted solid angle equals the ambient occlusion ``AO`` (itself the occluded
  irradiance of unit light, from the visibility SH), so its half-angle has
  ``cos θ_v = sqrt(1 − AO)``; the specular lobe is a cone around the Lagarde–de Rousiers
  dominant direction (:func:`dominant_direction`) whose mean cosine matches the normal-
  incidence lobe's first Legendre moment, ``cos θ_s = 2 g_1(r) − 1``.
  ``SO`` is the (smoothstep-approximated) solid angle of their intersection, divided by
  the same quantity for an unoccluded texel (a hemisphere cone around ``n``), so a fully
  visible texel gets exactly ``SO = 1`` and the horizon, already in the DFG term, is not
  counted twice.
* Tangent-space normal maps (x along T, y along B, z along N) perturb the interpolated
  mesh normal: ``n = normalize(T x + B y + N z)``. The bent normal (tangent space too)
  is brought to the camera frame with the unperturbed mesh frame it was baked in.

Public tensors here are channels-last ``[B, *, C]`` (``*`` any pixel layout, e.g. ``H, W``
or a gathered list ``P``); lighting is ``[B, 3, 9]``; everything is in the camera frame
and linear RGB. All functions are differentiable w.r.t. every texture and the lighting.
Internally the per-pixel math runs channel-first (``[B, C, N]``, the ``*_cf`` helpers):
every operation is then a contiguous vector operation over pixels, and reductions over
channels are adds of whole rows, which on the CPU is several times faster than the
channels-last layout. The occluded diffuse term uses the sparse triple product
(:func:`~facerefl.render.sh.sh_product_cf`, 83 terms) of the visibility and the cosine
lobe at the normal, then one small matmul with the lighting.

Specular occlusion is evaluated with the interpolated mesh normal, not the normal-mapped
one: visibility and bent normal are baked from the mesh, and normal-map detail does not
change occlusion at that scale. It is therefore a per-pixel constant during fitting.

For fitting, :func:`prepare_gbuffer` gathers the covered pixels of a G-buffer once,
together with everything that does not change while the textures and lighting are
optimized (frames, baked visibility, bent normals, specular occlusion), and
:func:`shade_prepared` shades only those pixels (about half of a portrait) and scatters
them back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from facerefl.render import fused
from facerefl.render.brdf import (
    DEFAULT_ROUGHNESS,
    split_sum_column,
    dfg_lookup,
    split_sum_lookup,
    f0_from_specular,
    f90_from_f0,
    lobe_band_factors,
)
from facerefl.render.color import linear_to_srgb
from facerefl.render.raster import GBuffer
from facerefl.render.sh import (
    BAND_OF,
    COSINE_BAND_WEIGHTS,
    SH_COUNT,
    mm_cf,
    sh_basis,
    sh_eval_bands_cf,
    sh_eval_cf,
    sh_product_cf,
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
        raise ValueError(
            f"{name} must have shape [B, *, {channels}] (at least one pixel dim), got {tuple(t.shape)}"
        )
    return tuple(t.shape[:-1])


def _check_light(light: Tensor, batch: int) -> None:
    if light.dim() != 3 or light.shape[1:] != (3, SH_COUNT) or light.shape[0] != batch:
        raise ValueError(f"light must have shape [B={batch}, 3, 9], got {tuple(light.shape)}")


def _check_spec_model(spec_model: str) -> None:
    if spec_model not in SPEC_MODELS:
        raise ValueError(f"spec_model must be one of {SPEC_MODELS}, got {spec_model!r}")


# ------------------------------------------------------------- layout conversions


def _cf(t: Tensor, channels: int) -> Tensor:
    """``[B, *, C]`` → contiguous channel-first ``[B, C, N]``."""
    return t.reshape(t.shape[0], -1, channels).transpose(1, 2).contiguous()


def _cl(t: Tensor, lead: tuple[int, ...]) -> Tensor:
    """Channel-first ``[B, C, N]`` → ``[B, *, C]`` (a view where possible)."""
    return t.transpose(1, 2).reshape(*lead, t.shape[1])


def _rough_cf(roughness: float | Tensor, lead: tuple[int, ...]) -> float | Tensor:
    """Scalar roughness stays a float; tensors (0-dim or ``[B, *, 1]``) become ``[B, 1, N]``."""
    if not isinstance(roughness, Tensor):
        return float(roughness)
    if roughness.dim() == 0:
        return roughness.reshape(1, 1, 1).expand(lead[0], 1, math.prod(lead[1:]))
    _check_pixels("roughness", roughness, lead, 1)
    return _cf(roughness, 1)


# ------------------------------------------------------ channel-first pieces [B, C, N]


def _dot_cf(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).sum(1, keepdim=True)


def _normalize_cf(v: Tensor) -> Tensor:
    return v * torch.rsqrt(_dot_cf(v, v).clamp_min(_EPS * _EPS))


def _to_camera_cf(vec_ts: Tensor, tangent: Tensor, bitangent: Tensor, normal: Tensor) -> Tensor:
    # split (one backward node) rather than three slices (three zero-filled gradients)
    x, y, z = vec_ts.split(1, dim=1)
    return tangent * x + bitangent * y + normal * z


def _axis_cf(normal: Tensor, view_dir: Tensor, n_dot_v: Tensor, s: float | Tensor) -> Tensor:
    """``normalize(n + s (R − n))`` with ``R = 2 (n·v) n − v``: between n (s = 0) and R (s = 1)."""
    return _normalize_cf(normal * (1.0 + s * (2.0 * n_dot_v - 1.0)) - s * view_dir)


def _dominant_cf(normal: Tensor, view_dir: Tensor, n_dot_v: Tensor, roughness: float | Tensor) -> Tensor:
    """Lagarde & de Rousiers' dominant direction: ``s = (1 − α)(sqrt(1 − α) + α)``, α = r²."""
    r = roughness.clamp(0.0, 1.0) if isinstance(roughness, Tensor) else min(max(roughness, 0.0), 1.0)
    a = r * r
    smooth = 1.0 - a
    return _axis_cf(normal, view_dir, n_dot_v, smooth * (smooth**0.5 + a))


def _cosine_weights(like: Tensor) -> Tensor:
    """Per-coefficient clamped-cosine factors ``A_l(k)/π = (1, 2/3, 2/3, 2/3, 1/4, …)``, ``[9]``."""
    return torch.tensor([COSINE_BAND_WEIGHTS[b] / math.pi for b in BAND_OF], dtype=like.dtype, device=like.device)


def _cosine_light(light: Tensor) -> Tensor:
    """Lighting convolved with the clamped cosine and divided by π, ``[B, 3, 9]``."""
    return light * _cosine_weights(light)


def _diffuse_cf(normal: Tensor, light: Tensor, vis: Tensor | None) -> Tensor:
    """``L_d [B, 3, N]`` at unit normals ``[B, 3, N]`` from the light and visibility.

    With visibility: ``L_d = z · T(v, cos_n)/π``, the lighting dotted with the order-2
    projection of visibility × clamped cosine (Snyder triple product), equation 7."""
    if vis is None:
        return sh_eval_cf(_cosine_light(light), normal)
    cw = tuple(c / math.pi for c in COSINE_BAND_WEIGHTS)
    return mm_cf(light, sh_product_cf(vis, sh_basis(normal, dim=1), cw))


def _ao_cf(normal: Tensor, vis: Tensor) -> Tensor:
    """Ambient occlusion ``[B, 1, N]`` at unit normals ``[B, 3, N]`` from visibility SH
    ``[B, 9, N]``: ``(1/π) ∫ V(ω) max(0, n·ω) dω = Σ_k (A_l(k)/π) V_k Y_k(n)`` (the
    visibility read as a "light" and convolved with the clamped cosine), clamped to
    [0, 1]. A texel open over its whole upper hemisphere gets exactly 1."""
    return (_cosine_weights(vis)[:, None] * sh_basis(normal, dim=1) * vis).sum(1, keepdim=True).clamp(0.0, 1.0)


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


def _spec_occlusion_cf(
    normal: Tensor, view_dir: Tensor, vis: Tensor, bent: Tensor, roughness: float | Tensor
) -> Tensor:
    ao = _ao_cf(normal, vis)
    if isinstance(roughness, Tensor):
        g1 = lobe_band_factors(roughness[:, 0])[..., 1].unsqueeze(1)
    else:
        g1 = float(lobe_band_factors(roughness, dtype=torch.float64)[1])
    cos_s = 2.0 * g1 - 1.0
    if not isinstance(cos_s, Tensor):
        cos_s = torch.full_like(ao, cos_s)
    axis = _dominant_cf(normal, view_dir, _dot_cf(normal, view_dir).clamp(0.0, 1.0), roughness)
    cos_v = torch.sqrt((1.0 - ao).clamp_min(0.0))
    occluded = _cone_overlap(cos_v, cos_s, _dot_cf(bent, axis))
    open_ = _cone_overlap(torch.zeros_like(cos_v), cos_s, _dot_cf(normal, axis))
    return (occluded / open_.clamp_min(1e-8)).clamp(0.0, 1.0)


def _specular_cf(
    normal: Tensor,
    view_dir: Tensor,
    light: Tensor,
    f0: Tensor,
    roughness: float | Tensor,
    spec_model: str,
    irr_n: Tensor | None = None,
) -> Tensor:
    """Unoccluded ``L_s [B, 3, N]`` (split sum; see module docstring). ``irr_n`` is the
    unoccluded ``E(n)/π [B, 3, N]`` if already computed (the ``"paper"`` radiance)."""
    n_dot_v = _dot_cf(normal, view_dir).clamp(0.0, 1.0)
    rough = roughness[:, 0] if isinstance(roughness, Tensor) else roughness
    if spec_model == "paper":
        dfg_a, dfg_b = dfg_lookup(n_dot_v[:, 0], rough).split(1, dim=1)
        pre = sh_eval_cf(_cosine_light(light), normal) if irr_n is None else irr_n
        return (f0 * dfg_a + f90_from_f0(f0) * dfg_b) * pre
    dfg_a, dfg_b, s_a, g1_a, g2_a, s_b, g1_b, g2_b = split_sum_lookup(n_dot_v[:, 0], rough).split(1, dim=1)
    pre_a = _lobe_radiance_cf(normal, view_dir, n_dot_v, light, s_a, g1_a, g2_a)
    pre_b = _lobe_radiance_cf(normal, view_dir, n_dot_v, light, s_b, g1_b, g2_b)
    return (f0 * dfg_a) * pre_a + (f90_from_f0(f0) * dfg_b) * pre_b


def _lobe_radiance_cf(
    normal: Tensor, view_dir: Tensor, n_dot_v: Tensor, light: Tensor, s: Tensor, g1: Tensor, g2: Tensor
) -> Tensor:
    """Radiance ``[B, 3, N]`` seen through a normalized zonal lobe with band factors
    ``(1, g1, g2)`` about ``D = normalize(n + s (R − n))``, ``R = 2 (n·v) n − v``."""
    b0, b1, b2 = sh_eval_bands_cf(light, _axis_cf(normal, view_dir, n_dot_v, s))
    return b0 + g1 * b1 + g2 * b2


def _shade_cf(
    normal: Tensor,
    tangent: Tensor,
    bitangent: Tensor,
    view_dir: Tensor,
    albedo: Tensor,
    specular: Tensor,
    light: Tensor,
    normal_ts: Tensor | None,
    vis: Tensor | None,
    spec_occlusion: Tensor | None,
    roughness: float | Tensor,
    spec_model: str,
) -> tuple[Tensor, Tensor, Tensor]:
    """Core of every shading entry point; channel-first ``[B, C, N]`` in and out."""
    n = normal if normal_ts is None else _normalize_cf(_to_camera_cf(normal_ts, tangent, bitangent, normal))
    l_d = _diffuse_cf(n, light, vis)
    irr_n = l_d if vis is None else None
    l_s = _specular_cf(n, view_dir, light, f0_from_specular(specular), roughness, spec_model, irr_n)
    if spec_occlusion is not None:
        l_s = l_s * spec_occlusion
    diffuse = albedo * (1.0 - specular) * l_d
    return diffuse + l_s, diffuse, l_s


# ----------------------------------------------------------- public per-pixel API


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
    return 2.0 * (normal * view_dir).sum(-1, keepdim=True) * normal - view_dir


def dominant_direction(normal: Tensor, view_dir: Tensor, roughness: float | Tensor) -> Tensor:
    """Dominant direction of the GGX specular lobe (used for specular occlusion).

    Lagarde & de Rousiers 2014: ``normalize(lerp(n, R, s))`` with
    ``s = (1 − α)(sqrt(1 − α) + α)``, α = r², which moves the lobe towards the normal
    as it widens (the off-specular peak).

    Args:
        normal, view_dir: ``[B, *, 3]`` unit vectors (camera frame).
        roughness: scalar or ``[B, *, 1]``.

    Returns:
        ``[B, *, 3]`` unit direction.
    """
    lead = _lead("normal", normal, 3)
    _check_pixels("view_dir", view_dir, lead, 3)
    n, v = _cf(normal, 3), _cf(view_dir, 3)
    return _cl(_dominant_cf(n, v, _dot_cf(n, v).clamp(0.0, 1.0), _rough_cf(roughness, lead)), lead)


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
        vis_sh = _cf(vis_sh, SH_COUNT)
    return _cl(_diffuse_cf(_cf(normal, 3), light, vis_sh), lead)


def ambient_occlusion(normal: Tensor, vis_sh: Tensor) -> Tensor:
    """Cosine-weighted visibility ``(1/π) ∫ V max(0, n·ω) dω`` from SH, in [0, 1].

    Computed as ``Σ_k (A_l(k)/π) V_k Y_k(n)`` with the clamped-cosine factors
    ``A_l = (π, 2π/3, π/4)``: exactly 1 for a texel open over its upper hemisphere,
    otherwise the SH-9 truncation of the true value (docs/occlusion.md).

    Args:
        normal: ``[B, *, 3]`` unit normals; vis_sh: ``[B, *, 9]`` visibility SH (same frame).

    Returns:
        ``[B, *, 1]``.
    """
    lead = _lead("normal", normal, 3)
    _check_pixels("vis_sh", vis_sh, lead, SH_COUNT)
    return _cl(_ao_cf(_cf(normal, 3), _cf(vis_sh, SH_COUNT)), lead)


def specular_occlusion(
    normal: Tensor, view_dir: Tensor, vis_sh: Tensor, bent_normal: Tensor, roughness: float | Tensor
) -> Tensor:
    """Specular occlusion from visibility SH and the bent normal (module docstring).

    Args:
        normal: ``[B, *, 3]`` unit mesh normal; view_dir: ``[B, *, 3]`` unit, to camera.
        vis_sh: ``[B, *, 9]`` visibility SH; bent_normal: ``[B, *, 3]`` unit, camera frame.
        roughness: scalar or ``[B, *, 1]``.

    Returns:
        ``[B, *, 1]`` factor in [0, 1]; exactly 1 when the texel is unoccluded.
    """
    lead = _lead("normal", normal, 3)
    for name, t, c in (("view_dir", view_dir, 3), ("vis_sh", vis_sh, SH_COUNT), ("bent_normal", bent_normal, 3)):
        _check_pixels(name, t, lead, c)
    so = _spec_occlusion_cf(
        _cf(normal, 3), _cf(view_dir, 3), _cf(vis_sh, SH_COUNT), _cf(bent_normal, 3), _rough_cf(roughness, lead)
    )
    return _cl(so, lead)


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
    out = _specular_cf(
        _cf(normal, 3), _cf(view_dir, 3), light, f0_from_specular(_cf(specular, 1)),
        _rough_cf(roughness, lead), spec_model,
    )
    return _cl(out, lead)


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
        ("tangent", tangent, 3), ("bitangent", bitangent, 3), ("view_dir", view_dir, 3),
        ("albedo", albedo, 3), ("specular", specular, 1),
    ):
        _check_pixels(name, t, lead, c)
    for name, t, c in (("normal_ts", normal_ts, 3), ("vis_sh", vis_sh, SH_COUNT), ("bent_normal_ts", bent_normal_ts, 3)):
        if t is not None:
            _check_pixels(name, t, lead, c)
    _check_light(light, lead[0])
    _check_spec_model(spec_model)
    n, t, b, v = (_cf(x, 3) for x in (normal, tangent, bitangent, view_dir))
    vis = None if vis_sh is None else _cf(vis_sh, SH_COUNT)
    rough = _rough_cf(roughness, lead)
    occ = None
    if vis is not None and bent_normal_ts is not None:
        bent = _normalize_cf(_to_camera_cf(_cf(bent_normal_ts, 3), t, b, n))
        occ = _spec_occlusion_cf(n, v, vis, bent, rough)
    out = _shade_cf(
        n, t, b, v, _cf(albedo, 3), _cf(specular, 1), light,
        None if normal_ts is None else _cf(normal_ts, 3), vis, occ, rough, spec_model,
    )
    return Shading(*(_cl(x, lead) for x in out))


# --------------------------------------------------------------------- G-buffer paths


def _sample(tex: Tensor | None, uv: Tensor, name: str, channels: int) -> Tensor | None:
    """Sample a UV map ``[B, C, Ht, Wt]`` at ``uv [B, *, 2]`` → ``[B, *, C]`` (None stays None)."""
    if tex is None:
        return None
    if tex.dim() != 4 or tex.shape[1] != channels:
        raise ValueError(f"{name} must have shape [B, {channels}, Ht, Wt], got {tuple(tex.shape)}")
    return sample_texture(tex, uv)


def _sample_cf(tex: Tensor | None, uv: Tensor, name: str, channels: int) -> Tensor | None:
    """Sample a UV map at gathered ``uv [B, N, 2]`` → channel-first ``[B, C, N]`` (a view of
    ``grid_sample``'s own layout, no copy)."""
    out = _sample(tex, uv, name, channels)
    return None if out is None else out.transpose(1, 2)


def _sample_maps_cf(
    uv: Tensor, albedo: Tensor, specular: Tensor, normal: Tensor | None
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Sample the optimized maps at gathered ``uv [B, N, 2]``, channel-first. Maps of the
    same size are concatenated and sampled in one lookup (one interpolation setup and
    one backward pass instead of three)."""
    maps = [(albedo, "albedo", 3), (specular, "specular", 1)] + ([(normal, "normal", 3)] if normal is not None else [])
    for tex, name, c in maps:
        if tex.dim() != 4 or tex.shape[1] != c:
            raise ValueError(f"{name} must have shape [B, {c}, Ht, Wt], got {tuple(tex.shape)}")
    if len({tuple(t.shape[2:]) for t, _, _ in maps}) == 1 and len({t.shape[0] for t, _, _ in maps}) == 1:
        both = _sample_cf(torch.cat([t for t, _, _ in maps], 1), uv, "maps", sum(c for _, _, c in maps))
        parts = both.split([c for _, _, c in maps], dim=1)
        return parts[0], parts[1], (parts[2] if normal is not None else None)
    return (_sample_cf(albedo, uv, "albedo", 3), _sample_cf(specular, uv, "specular", 1),
            _sample_cf(normal, uv, "normal", 3))


def _rough_from_maps(roughness: float | Tensor, uv: Tensor, lead: tuple[int, ...]) -> float | Tensor:
    """Roughness as a float or ``[B, 1, N]``: sampled if a ``[B, 1, Ht, Wt]`` map."""
    if isinstance(roughness, Tensor) and roughness.dim() == 4:
        return _sample_cf(roughness, uv, "roughness", 1)
    return _rough_cf(roughness, lead)


def _safe_frame(gbuf: GBuffer) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """G-buffer frame ``[B, H, W, 3]`` with empty pixels replaced by a valid one."""
    m = gbuf.mask > 0.5
    eye = torch.eye(3, dtype=gbuf.normal.dtype, device=gbuf.normal.device)
    return (
        torch.where(m, gbuf.normal, eye[2]), torch.where(m, gbuf.tangent, eye[0]),
        torch.where(m, gbuf.bitangent, eye[1]), torch.where(m, gbuf.view_dir, eye[2]),
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
    if isinstance(roughness, Tensor) and roughness.dim() == 4:
        roughness = _sample(roughness, uv, "roughness", 1)
    out = shade(
        n, t, b, v, _sample(albedo, uv, "albedo", 3), _sample(specular, uv, "specular", 1), light,
        normal_ts=_sample(normal, uv, "normal", 3),
        vis_sh=_sample(vis_sh, uv, "vis_sh", SH_COUNT),
        bent_normal_ts=_sample(bent_normal, uv, "bent_normal", 3),
        roughness=roughness,
        spec_model=spec_model,
    )
    m = gbuf.mask
    return Shading(out.rgb * m, out.diffuse * m, out.specular * m)


@dataclass(frozen=True)
class PreparedGBuffer:
    """The covered pixels of a G-buffer, gathered once for repeated shading.

    Everything that stays fixed while textures and lighting are optimized is stored
    per covered pixel, channel-first: the mesh frame, the view direction, the baked
    visibility SH and bent normal (sampled once, bent normal in the camera frame) and
    the specular occlusion. Batch elements with fewer covered pixels are padded; padded
    entries hold a harmless frame and are dropped when scattering back.

    Attributes:
        index: ``[B, P]`` int64 flat pixel index ``row·W + col``; padding holds ``H·W``.
        uv: ``[B, P, 2]`` texture coordinates (for :func:`~facerefl.render.texture.sample_texture`).
        normal, tangent, bitangent, view_dir: ``[B, 3, P]`` unit, camera frame.
        vis_sh: ``[B, 9, P]`` or None.
        bent_normal: ``[B, 3, P]`` unit, camera frame, or None.
        spec_occlusion: ``[B, 1, P]`` specular occlusion for roughness
            ``occlusion_roughness`` (it depends only on baked data, the mesh frame and
            the roughness), or None without visibility/bent normal.
        occlusion_roughness: the scalar roughness ``spec_occlusion`` was computed for.
        height, width: image size.
        fused_cache: lazily filled inputs of :mod:`facerefl.render.fused` (texture taps
            per map size, packed constants per roughness); not part of equality.
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
    #: per-size bilinear taps and packed constants of the fused CPU path (filled lazily)
    fused_cache: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def num_pixels(self) -> int:
        """P, the (padded) number of gathered pixels per batch element."""
        return self.index.shape[1]

    def occlusion_for(self, roughness: float | Tensor) -> Tensor | None:
        """``[B, 1, P]`` specular occlusion for ``roughness`` (float or ``[B, 1, P]``);
        the cached one when it was prepared for the same scalar."""
        if self.spec_occlusion is None or self.bent_normal is None or self.vis_sh is None:
            return None
        if not isinstance(roughness, Tensor) and float(roughness) == self.occlusion_roughness:
            return self.spec_occlusion
        return _spec_occlusion_cf(self.normal, self.view_dir, self.vis_sh, self.bent_normal, roughness)

    def gather(self, image: Tensor) -> Tensor:
        """Pick the covered pixels of an image ``[B, H, W, C]`` → ``[B, P, C]`` (padding: 0)."""
        if image.dim() != 4 or image.shape[:3] != (self.index.shape[0], self.height, self.width):
            raise ValueError(
                f"image must have shape [{self.index.shape[0]}, {self.height}, {self.width}, C], "
                f"got {tuple(image.shape)}"
            )
        b, h, w, c = image.shape
        flat = torch.cat([image.reshape(b, h * w, c), image.new_zeros(b, 1, c)], dim=1)
        return flat.gather(1, self.index.unsqueeze(-1).expand(-1, -1, c))

    def scatter_cf(self, values: Tensor) -> Tensor:
        """Channel-first per-pixel values ``[B, C, P]`` → image ``[B, H, W, C]`` (0 elsewhere;
        an NHWC view of channel-first memory)."""
        b, c, p = values.shape
        hw = self.height * self.width
        out = values.new_zeros(b, c, hw + 1).scatter(2, self.index.unsqueeze(1).expand(-1, c, -1), values)
        return out[:, :, :hw].reshape(b, c, self.height, self.width).permute(0, 2, 3, 1)

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
    # a stable sort puts covered pixels first, in raster order
    order = torch.sort((~covered).to(torch.uint8), dim=1, stable=True).indices[:, :p]
    keep = torch.arange(p, device=order.device)[None] < counts[:, None]
    index = torch.where(keep, order, torch.full_like(order, h * w))
    safe_index = index.clamp_max(h * w - 1)

    def pick(img: Tensor) -> Tensor:
        c = img.shape[-1]
        return img.reshape(b, h * w, c).gather(1, safe_index.unsqueeze(-1).expand(-1, -1, c))

    n, t, bt, v = (pick(x).transpose(1, 2).contiguous() for x in _safe_frame(gbuf))
    eye = torch.eye(3, dtype=n.dtype, device=n.device)
    pad = ~keep[:, None]
    n, t, bt, v = (torch.where(pad, e[:, None], x) for x, e in ((n, eye[2]), (t, eye[0]), (bt, eye[1]), (v, eye[2])))
    uv = pick(gbuf.uv)
    vis = None if vis_sh is None else _sample_cf(vis_sh.detach(), uv, "vis_sh", SH_COUNT).contiguous()
    bent = occ = None
    if bent_normal is not None:
        bent = _normalize_cf(_to_camera_cf(_sample_cf(bent_normal.detach(), uv, "bent_normal", 3), t, bt, n))
    if vis is not None and bent is not None:
        occ = _spec_occlusion_cf(n, v, vis, bent, float(roughness))
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

    On the CPU with a scalar roughness (fitting's case) the work runs in the fused numba
    kernels of :mod:`facerefl.render.fused` (same values and gradients, several times
    faster); otherwise, or with ``FACEREFL_FUSED=0``, as composed PyTorch.
    """
    _check_light(light, prep.index.shape[0])
    _check_spec_model(spec_model)
    if _fused_applies(prep, albedo, specular, normal, light, roughness):
        out = _shade_prepared_fused(prep, albedo, specular, light, normal, float(roughness), spec_model)
    else:
        out = _shade_prepared_reference(prep, albedo, specular, light, normal, roughness, spec_model)
    if to_image:
        return Shading(*(prep.scatter_cf(x) for x in out))
    return Shading(*(x.transpose(1, 2) for x in out))


def _fused_applies(prep: PreparedGBuffer, albedo: Tensor, specular: Tensor, normal: Tensor | None,
                   light: Tensor, roughness: float | Tensor) -> bool:
    """The fused CPU kernels cover fitting's configuration: a scalar roughness, CPU float
    tensors of one dtype, maps ``[1 or B, C, H, W]``."""
    if isinstance(roughness, Tensor) or not fused.supports(prep.normal, albedo, specular, normal, light):
        return False
    b = prep.index.shape[0]
    return all(t.dim() == 4 and t.shape[1] == c and t.shape[0] in (1, b)
               for t, c in ((albedo, 3), (specular, 1), (normal, 3)) if t is not None)


def _shade_prepared_fused(prep: PreparedGBuffer, albedo: Tensor, specular: Tensor, light: Tensor,
                          normal: Tensor | None, roughness: float, spec_model: str) -> tuple[Tensor, Tensor, Tensor]:
    """:mod:`facerefl.render.fused` with this G-buffer's cached taps and constants."""
    dtype, cache = albedo.dtype, prep.fused_cache
    key = ("cst", roughness, dtype)
    if key not in cache:
        cache[key] = fused.constants(*(x.to(dtype) for x in (prep.normal, prep.tangent, prep.bitangent, prep.view_dir)),
                                     None if prep.vis_sh is None else prep.vis_sh.to(dtype),
                                     (lambda o: None if o is None else o.to(dtype))(prep.occlusion_for(roughness)))
    taps = []
    for tex in (albedo, specular, normal):
        if tex is None:
            taps.append(None)
            continue
        tkey = ("taps", tex.shape[2], tex.shape[3], dtype)
        if tkey not in cache:
            cache[tkey] = fused.bilinear_taps(prep.uv, tex.shape[2], tex.shape[3], dtype)
        taps.append(cache[tkey])
    column = split_sum_column(roughness, dtype, "cpu")
    if spec_model == "paper":
        column = fused.paper_column(column)
    return fused.shade_fused(albedo, specular, normal, light, cache[key], tuple(taps), column)


def _shade_prepared_reference(prep: PreparedGBuffer, albedo: Tensor, specular: Tensor, light: Tensor,
                              normal: Tensor | None, roughness: float | Tensor,
                              spec_model: str) -> tuple[Tensor, Tensor, Tensor]:
    """Composed-PyTorch path of :func:`shade_prepared` (any device, differentiable in all
    inputs); channel-first ``[B, 3, P]`` outputs."""
    uv = prep.uv
    rough = _rough_from_maps(roughness, uv, tuple(uv.shape[:-1]))
    albedo_px, spec_px, normal_px = _sample_maps_cf(uv, albedo, specular, normal)
    return _shade_cf(
        prep.normal, prep.tangent, prep.bitangent, prep.view_dir, albedo_px, spec_px, light,
        normal_px, prep.vis_sh, prep.occlusion_for(rough), rough, spec_model,
    )
