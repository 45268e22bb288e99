"""Baked self-occlusion (section 4): visibility SH, bent normals and ambient occlusion.

Per vertex, rays are cast on the mesh (Embree) in ``n_dirs`` fixed, evenly spread
directions (a Fibonacci sphere, the same for every vertex). The visibility function
``V(ω)`` is

* 0 below the tangent plane (``n·ω ≤ 0``): those directions go into the head;
* otherwise 1 when the ray escapes, 0 when it hits the mesh.

The face mesh is an open shell (no back of the head, ears or neck), so rays that leave
through its open back count as unoccluded: occlusion by the head's sides, ears, hair or
shoulders is not modelled.

From ``V``:

* visibility SH ``v_k = Σ_j w V(ω_j) Y_k(ω_j)`` with ``w = 2π / (number of directions
  above the vertex's tangent plane)``, 9 real SH
  coefficients in the **camera frame** (docs/conventions.md); the renderer combines them
  with the lighting by the SH triple product (section 6.1.1);
* bent normal: the mean unoccluded direction of the upper hemisphere (the normal itself
  where every direction is blocked), stored in **tangent space** (x along T = ∂P/∂u,
  y along B, z along N; the tangent frame of :func:`facerefl.render.raster.vertex_tangents`);
* ambient occlusion ``(1/π) Σ_j w V(ω_j) (n·ω_j)`` in [0, 1] (1 = open sky), used for
  previews and checks.

Per-vertex values are then interpolated into UV maps (with a gutter, see
:func:`~facerefl.geometry.uvmap.pad_texture`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from facerefl.geometry.raycast import RayCaster
from facerefl.geometry.uvmap import UVRaster, interpolate_texels, scatter_texels
from facerefl.render.raster import Mesh, vertex_tangents
from facerefl.render.sh import sh_basis

__all__ = ["DEFAULT_DIRECTIONS", "VertexBake", "BakedMaps", "fibonacci_sphere", "bake_vertices",
           "bake_maps"]

DEFAULT_DIRECTIONS = 256


@dataclass(frozen=True)
class VertexBake:
    """Per-vertex occlusion of one mesh.

    Attributes:
        visibility_sh: ``[V, 9]`` float32 visibility SH coefficients, camera frame.
        bent_normal: ``[V, 3]`` float32 unit bent normals, tangent space.
        ao: ``[V]`` float32 cosine-weighted ambient occlusion in [0, 1] (1 unoccluded).
    """

    visibility_sh: torch.Tensor
    bent_normal: torch.Tensor
    ao: torch.Tensor


@dataclass(frozen=True)
class BakedMaps:
    """The per-vertex bake interpolated into ``R × R`` UV maps (row 0 at v = 1).

    Attributes:
        visibility_sh: ``[9, R, R]`` float32, camera frame.
        bent_normal: ``[3, R, R]`` float32 unit, tangent space ((0, 0, 1) outside).
        ao: ``[1, R, R]`` float32 in [0, 1] (1 outside).
    """

    visibility_sh: torch.Tensor
    bent_normal: torch.Tensor
    ao: torch.Tensor


@functools.lru_cache(maxsize=8)
def _fibonacci(n: int) -> np.ndarray:
    k = np.arange(n) + 0.5
    z = 1.0 - 2.0 * k / n
    r = np.sqrt(np.clip(1.0 - z * z, 0.0, None))
    phi = k * math.pi * (3.0 - math.sqrt(5.0))
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def fibonacci_sphere(n: int) -> np.ndarray:
    """``[n, 3]`` float64 unit directions spread evenly over the sphere (equal areas)."""
    if n < 16:
        raise ValueError(f"use at least 16 ray directions, got {n}")
    return _fibonacci(int(n)).copy()


def _visibility(pos: np.ndarray, nrm: np.ndarray, dirs: np.ndarray,
                caster: RayCaster) -> np.ndarray:
    """``[V, M]`` bool: direction j is above vertex i's tangent plane and unblocked."""
    up = nrm @ dirs.T > 0.0  # [V, M]
    vi, dj = np.nonzero(up)
    eps = 1e-4 * caster.scale
    origins = pos[vi] + nrm[vi] * eps + dirs[dj] * eps
    vis = np.zeros_like(up)
    vis[vi, dj] = ~caster.hits(origins, dirs[dj])
    return vis


def bake_vertices(mesh: Mesh, n_dirs: int = DEFAULT_DIRECTIONS,
                  caster: RayCaster | None = None) -> VertexBake:
    """Ray-cast the per-vertex visibility of a camera-frame mesh.

    Args:
        mesh: the face mesh (camera frame, CCW, normals computed when absent).
        n_dirs: ray directions per vertex over the whole sphere (about half are cast).
        caster: optional :class:`RayCaster` on the same mesh, to reuse one.

    Returns:
        :class:`VertexBake`.
    """
    mesh = mesh.with_normals()
    pos = mesh.vertices.detach().cpu().double().numpy()
    nrm = mesh.normals.detach().cpu().double().numpy()
    caster = caster or RayCaster(pos, mesh.faces)
    dirs = fibonacci_sphere(n_dirs)
    vis = _visibility(pos, nrm, dirs, caster).astype(np.float64)
    cosines = np.clip(nrm @ dirs.T, 0.0, None)
    # Each vertex's upper-hemisphere samples share exactly 2π sr (instead of 4π/M each),
    # which removes the noise of how many fixed directions happen to lie above its plane.
    n_up = np.maximum((cosines > 0).sum(1, keepdims=True), 1)
    w = 2.0 * math.pi / n_up  # [V, 1]
    ybasis = sh_basis(torch.from_numpy(dirs)).numpy()  # [M, 9]
    sh = (w * vis) @ ybasis
    ao = np.clip((w / math.pi * vis * cosines).sum(1), 0.0, 1.0)
    bent = vis @ dirs
    norm = np.linalg.norm(bent, axis=1, keepdims=True)
    bent = np.where(norm > 1e-6, bent / np.maximum(norm, 1e-12), nrm)
    return VertexBake(
        visibility_sh=torch.from_numpy(sh.astype(np.float32)),
        bent_normal=_to_tangent(mesh, torch.from_numpy(bent)).float(),
        ao=torch.from_numpy(ao.astype(np.float32)),
    )


def _to_tangent(mesh: Mesh, vectors: torch.Tensor) -> torch.Tensor:
    """Camera-frame vectors ``[V, 3]`` → the vertices' tangent frames (T, B, N), unit."""
    v = mesh.vertices.detach().cpu().double()
    n = mesh.normals.detach().cpu().double()
    t4 = vertex_tangents(v, mesh.faces.cpu(), mesh.uvs.detach().cpu().double(), n)
    t, hand = t4[:, :3], t4[:, 3:]
    b = hand * torch.cross(n, t, dim=-1)
    out = torch.stack([(vectors * t).sum(-1), (vectors * b).sum(-1), (vectors * n).sum(-1)], -1)
    return torch.nn.functional.normalize(out, dim=-1, eps=1e-12)


def bake_maps(bake: VertexBake, raster: UVRaster) -> BakedMaps:
    """Interpolate a :class:`VertexBake` into UV maps of the raster's size.

    The gutter of width :func:`~facerefl.geometry.uvmap.pad_width` around the layout
    repeats the nearest covered texel; texels beyond it hold neutral values.

    Args:
        bake: per-vertex values of the mesh whose UV layout ``raster`` is.
        raster: :func:`~facerefl.geometry.uvmap.rasterize_uv` of that mesh.
    """
    sh = interpolate_texels(raster, bake.visibility_sh)
    bent = interpolate_texels(raster, bake.bent_normal)
    bent /= np.maximum(np.linalg.norm(bent, axis=1, keepdims=True), 1e-12)
    ao = interpolate_texels(raster, bake.ao[:, None])
    bent_map = scatter_texels(raster, bent, gutter=True)
    bent_map[2][~raster.padded] = 1.0  # (0, 0, 1): the unperturbed normal
    return BakedMaps(
        visibility_sh=scatter_texels(raster, sh, gutter=True),
        bent_normal=bent_map,
        ao=scatter_texels(raster, ao, fill=1.0, gutter=True),
    )
