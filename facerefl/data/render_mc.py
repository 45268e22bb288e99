"""Monte Carlo reference renderer for the test set (issue 4, part 4).

Unlike the training renderer it uses none of the approximations the fitting stage
inverts: the light is the full-resolution HDR map (piecewise constant per texel, not its
SH projection), visibility is ray-cast against the mesh (Embree), and the BRDF is the
exact GGX microfacet model of :mod:`facerefl.render.brdf` (same F0 = 0.08 t_r, f90,
height-correlated Smith, alpha = r^2) plus the energy-conserving diffuse term of
equation 5, ``t_a (1 - t_r) / pi``. Per pixel it estimates

    L_o = integral of [t_a (1 - t_r) / pi + f_ggx(l, v)] L(l) V(l) max(0, n.l) dl

with multiple importance sampling (balance heuristic) of two strategies: the map's
luminance x solid-angle distribution (handles the sun) and cosine-weighted directions
about the shading normal (handles broad light). ``n`` is the mesh normal perturbed by the
normal map; rays leave from the surface point, offset along the interpolated normal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from facerefl.data.hdri import direction_to_pixel, equirect_solid_angles
from facerefl.data.lighting import LightSample, cached_map
from facerefl.data.procedural import Reflectance
from facerefl.data.scene import Scene
from facerefl.geometry.raycast import RayCaster
from facerefl.render.brdf import (
    DEFAULT_ROUGHNESS,
    f0_from_specular,
    f90_from_f0,
    fresnel_schlick,
    ggx_d,
    smith_visibility,
)
from facerefl.render.raster import GBuffer
from facerefl.render.shading import perturb_normal
from facerefl.render.texture import sample_texture

_LUMA = torch.tensor([0.2126, 0.7152, 0.0722], dtype=torch.float64)


@dataclass(frozen=True)
class EnvSampler:
    """Importance sampler of one augmented HDR map (camera frame).

    Attributes:
        radiance: ``[H, W, 3]`` float64 map times the light's gain.
        rotation: ``[3, 3]`` float64 map -> camera frame.
        pmf: ``[H*W]`` texel probabilities (luminance x solid angle, normalised).
        cdf: ``[H*W]`` cumulative pmf.
        solid_angle: ``[H, W]`` texel solid angles.
    """

    radiance: torch.Tensor
    rotation: torch.Tensor
    pmf: torch.Tensor
    cdf: torch.Tensor
    solid_angle: torch.Tensor

    @classmethod
    def from_light(cls, light: LightSample) -> "EnvSampler":
        """Sampler of the full-resolution cached map of ``light`` (rotated, scaled)."""
        return cls.from_map(cached_map(light.name, False), light.rotation, light.gain)

    @classmethod
    def from_map(cls, env: torch.Tensor | np.ndarray, rotation: np.ndarray,
                 gain: np.ndarray) -> "EnvSampler":
        """Sampler of equirect map ``env [H, W, 3]`` (hdri convention) rotated and scaled."""
        env = torch.as_tensor(env).double() * torch.as_tensor(gain, dtype=torch.float64)
        h, w = env.shape[:2]
        om = equirect_solid_angles(h, w, torch.float64)
        weight = (env @ _LUMA).clamp_min(0) * om + 1e-12
        pmf = (weight / weight.sum()).reshape(-1)
        return cls(env, torch.as_tensor(rotation, dtype=torch.float64), pmf, torch.cumsum(pmf, 0), om)

    def sample(self, u: torch.Tensor) -> torch.Tensor:
        """Unit camera-frame directions ``[N, 3]`` from uniforms ``u [N, 3]`` in [0, 1)."""
        h, w = self.solid_angle.shape
        idx = torch.searchsorted(self.cdf, u[:, 0].contiguous() * self.cdf[-1]).clamp(max=h * w - 1)
        row, col = idx // w, idx % w
        z0 = torch.cos(row.double() * math.pi / h)
        z1 = torch.cos((row.double() + 1) * math.pi / h)
        cos_t = z0 + (z1 - z0) * u[:, 1]  # uniform in solid angle inside the texel
        sin_t = torch.sqrt((1 - cos_t**2).clamp_min(0))
        phi = (col.double() + u[:, 2]) * (2 * math.pi / w) - math.pi
        d_map = torch.stack([sin_t * torch.sin(phi), cos_t, -sin_t * torch.cos(phi)], -1)
        return d_map @ self.rotation.T

    def lookup(self, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Radiance ``[..., 3]`` and solid-angle pdf ``[...]`` towards camera-frame ``d``."""
        h, w = self.solid_angle.shape
        row, col = direction_to_pixel(d @ self.rotation, h, w)
        pdf = self.pmf.view(h, w)[row, col] / self.solid_angle[row, col]
        return self.radiance[row, col], pdf


def _frame(n: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two unit vectors completing ``n [..., 3]`` to an orthonormal frame."""
    a = torch.where(n[..., :1].abs() < 0.9, torch.tensor([1.0, 0, 0], dtype=n.dtype),
                    torch.tensor([0, 1.0, 0], dtype=n.dtype))
    t = F.normalize(torch.cross(a, n, dim=-1), dim=-1)
    return t, torch.cross(n, t, dim=-1)


def _cosine_sample(n: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    t, b = _frame(n)
    r, phi = torch.sqrt(u[..., 0]), 2 * math.pi * u[..., 1]
    z = torch.sqrt((1 - u[..., 0]).clamp_min(0))
    return (t * (r * torch.cos(phi))[..., None] + b * (r * torch.sin(phi))[..., None]
            + n * z[..., None])


def brdf_cos(l, n, v, albedo, t_r, roughness) -> torch.Tensor:
    """``f(l, v) max(0, n.l)`` for diffuse + GGX, ``[P, 3]``."""
    nl = (n * l).sum(-1, keepdim=True)
    nv = (n * v).sum(-1, keepdim=True).clamp_min(1e-4)
    h = F.normalize(l + v, dim=-1)
    nh = (n * h).sum(-1, keepdim=True).clamp(0, 1)
    vh = (v * h).sum(-1, keepdim=True).clamp(0, 1)
    f0 = f0_from_specular(t_r)
    spec = ggx_d(nh, roughness) * smith_visibility(nv, nl.clamp_min(1e-6), roughness) \
        * fresnel_schlick(vh, f0, f90_from_f0(f0))
    diff = albedo * (1 - t_r) / math.pi
    return (diff + spec) * nl.clamp_min(0)


def render_mc(
    scene: Scene,
    gbuf: GBuffer,
    refl: Reflectance,
    env: EnvSampler,
    rng: np.random.Generator,
    backdrop: torch.Tensor | None = None,
    spp: int = 64,
    roughness: float = DEFAULT_ROUGHNESS,
    caster: RayCaster | None = None,
    chunk: int = 8,
) -> torch.Tensor:
    """Monte Carlo render of one scene, ``[H, W, 3]`` float32 linear RGB.

    Args:
        scene, gbuf: the posed mesh/camera and its G-buffer.
        refl: reflectance maps.
        env: the environment's sampler (:meth:`EnvSampler.from_light`: the full map, not
            its SH).
        rng: source of the sample pattern (deterministic given its state).
        backdrop: ``[H, W, 3]`` image behind the face (default black).
        spp: samples per pixel, half from the map and half cosine-weighted.
        chunk: samples per pixel traced per pass (bounds memory).
    """
    if spp < 2 or spp % 2:
        raise ValueError(f"spp must be an even number >= 2, got {spp}")
    m = gbuf.mask[0, ..., 0] > 0.5
    uv = gbuf.uv[0][m][None, None].double()  # [1, 1, P, 2]
    albedo = sample_texture(refl.albedo[None].double(), uv)[0, 0]
    t_r = sample_texture(refl.specular[None].double(), uv)[0, 0]
    n_ts = F.normalize(sample_texture(refl.normal[None].double(), uv)[0, 0], dim=-1)
    geo_n = F.normalize(gbuf.normal[0][m].double(), dim=-1)
    n = perturb_normal(geo_n, gbuf.tangent[0][m].double(), gbuf.bitangent[0][m].double(), n_ts)
    v = gbuf.view_dir[0][m].double()
    p = gbuf.position[0][m].double()
    caster = caster or RayCaster(scene.mesh.vertices, scene.mesh.faces)
    eps = 1e-4 * caster.scale
    n_half = spp // 2
    total = torch.zeros_like(albedo)
    for start in range(0, n_half, chunk):
        k = min(chunk, n_half - start)
        u = torch.from_numpy(rng.random((2, k, p.shape[0], 3)))
        dirs = torch.cat([env.sample(u[0].reshape(-1, 3)).view(k, -1, 3),
                          _cosine_sample(n[None].expand(k, -1, -1), u[1])], 0)  # [2k, P, 3]
        rad, pdf_env = env.lookup(dirs)
        pdf_cos = (dirs * n).sum(-1).clamp_min(0) / math.pi
        w = 1.0 / (n_half * (pdf_env + pdf_cos)).clamp_min(1e-12)
        f = brdf_cos(dirs, n[None], v[None], albedo[None], t_r[None], roughness)
        above = ((dirs * geo_n).sum(-1) > 0) & ((dirs * n).sum(-1) > 0) & (f.sum(-1) > 0)
        vis = torch.zeros_like(above)
        if bool(above.any()):
            org = (p[None] + eps * geo_n[None]).expand_as(dirs)[above].numpy()
            vis[above] = torch.from_numpy(~caster.hits(org, dirs[above].numpy()))
        total += (f * rad * (w * vis)[..., None]).sum(0)
    h, w = m.shape
    img = torch.zeros(h, w, 3, dtype=torch.float64) if backdrop is None else backdrop.double().clone()
    img[m] = total
    return img.float()
