"""UV-space rasterization: which triangle covers each texel, with which barycentrics.

Texel (i, j) of an ``R × R`` texture has its centre at UV ((j + 0.5)/R, 1 − (i + 0.5)/R)
(docs/conventions.md: v = 0 at the bottom row). The UV layout is drawn with the render
package's rasterizer by placing UV triangles in a plane facing a camera whose pixel grid
is the texel grid (all at one depth, so the barycentrics are the plain affine ones).

Maps baked into a layout get a *gutter*: the texels just outside the layout copy their
nearest covered texel, so that bilinear lookups near the layout's edges do not mix in
empty texels.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from scipy import ndimage

from facerefl.render.raster import Camera, Mesh, rasterize_visibility

__all__ = ["UVRaster", "rasterize_uv", "interpolate_uv", "interpolate_texels", "scatter_texels",
           "pad_texture", "pad_width", "fill_gutter"]


def pad_width(size: int) -> int:
    """Default gutter width in texels: 4 at 512², scaled with the resolution, at least 2."""
    return max(2, round(4 * size / 512))


@dataclass(frozen=True)
class UVRaster:
    """Triangle coverage of a square texture.

    Attributes:
        tri_id: ``[R, R]`` int64 triangle per texel (row 0 at the top, v = 1), −1 empty.
        bary: ``[R, R, 3]`` float32 barycentric weights of the triangle's 3 corners.
        faces: ``[F, 3]`` int64 the triangles they refer to.
        texels: ``[N]`` int64 flat indices (``i * R + j``) of the covered texels.
        weights: ``[N, V]`` scipy CSR matrix, 3 barycentric weights per row: per-vertex
            values ``[V, C]`` map to covered texels by ``weights @ values``.
        gutter_dst: ``[G]`` int64 flat indices of the gutter texels (within
            :func:`pad_width` of the layout, outside it).
        gutter_src: ``[G]`` int64 flat index of the nearest covered texel of each.
    """

    tri_id: torch.Tensor
    bary: torch.Tensor
    faces: torch.Tensor
    texels: torch.Tensor
    weights: sp.csr_matrix
    gutter_dst: np.ndarray
    gutter_src: np.ndarray

    @property
    def size(self) -> int:
        return int(self.tri_id.shape[0])

    @property
    def covered(self) -> torch.Tensor:
        """``[R, R]`` bool texels inside some triangle."""
        return self.tri_id >= 0

    @property
    def padded(self) -> torch.Tensor:
        """``[R, R]`` bool: covered texels and the gutter around them."""
        m = self.covered.reshape(-1).clone()
        m[torch.from_numpy(self.gutter_dst)] = True
        return m.view(self.size, self.size)


_CACHE: dict[tuple, UVRaster] = {}


def _key(faces: torch.Tensor, uvs: torch.Tensor, size: int) -> tuple:
    h = hashlib.sha1(faces.detach().cpu().numpy().tobytes())
    h.update(uvs.detach().cpu().to(torch.float32).numpy().tobytes())
    return size, h.hexdigest()


def _gutter(covered: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat (destination, nearest covered source) indices of the ``width``-texel ring."""
    if not covered.any() or covered.all():
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    dist, (ii, jj) = ndimage.distance_transform_edt(~covered, return_indices=True)
    ring = (dist > 0) & (dist <= width)
    r = covered.shape[1]
    dst = np.flatnonzero(ring)
    src = (ii.ravel()[dst] * r + jj.ravel()[dst]).astype(np.int64)
    return dst.astype(np.int64), src


def rasterize_uv(faces: torch.Tensor, uvs: torch.Tensor, size: int) -> UVRaster:
    """Rasterize the UV layout of a mesh at ``size × size`` texels (cached per layout).

    Args:
        faces: ``[F, 3]`` int64 triangles.
        uvs: ``[V, 2]`` UVs in [0, 1], v = 0 at the bottom.
        size: texture resolution R.

    Returns:
        :class:`UVRaster` on the CPU.
    """
    if size < 8:
        raise ValueError(f"texture size must be at least 8, got {size}")
    key = _key(faces, uvs, size)
    if key in _CACHE:
        return _CACHE[key]
    uv = uvs.detach().cpu().to(torch.float64)
    # X = u − ½, Y = v − ½ at depth 1 under fx = fy = R, c = R/2 lands on x = uR, y = (1 − v)R.
    plane = torch.stack([uv[:, 0] - 0.5, uv[:, 1] - 0.5, -torch.ones_like(uv[:, 0])], 1)
    cam = Camera(fx=float(size), fy=float(size), cx=size / 2.0, cy=size / 2.0,
                 width=size, height=size)
    f = faces.detach().cpu().long()
    tri_id, bary = rasterize_visibility(Mesh(plane, f, uv), cam)
    texels = torch.nonzero(tri_id.reshape(-1) >= 0).squeeze(1)
    corners = f[tri_id.reshape(-1)[texels]].numpy()
    w = bary.reshape(-1, 3)[texels].numpy()
    n = texels.numel()
    weights = sp.csr_matrix((w.ravel(), (np.repeat(np.arange(n), 3), corners.ravel())),
                            shape=(n, uv.shape[0]))
    dst, src = _gutter((tri_id >= 0).numpy(), pad_width(size))
    out = UVRaster(tri_id, bary.to(torch.float32), f, texels, weights, dst, src)
    if len(_CACHE) > 16:
        _CACHE.clear()
    _CACHE[key] = out
    return out


def interpolate_texels(raster: UVRaster, attr: torch.Tensor | np.ndarray) -> np.ndarray:
    """Per-vertex attributes ``[V, C]`` at the covered texels: ``[N, C]`` float64 numpy
    (row k belongs to texel ``raster.texels[k]``). No gradient."""
    a = attr.detach().cpu().double().numpy() if isinstance(attr, torch.Tensor) else np.asarray(attr, np.float64)
    return raster.weights @ a


def scatter_texels(raster: UVRaster, values: np.ndarray | torch.Tensor, fill: float = 0.0,
                   gutter: bool = False) -> torch.Tensor:
    """Covered-texel values ``[N, C]`` → texture ``[C, R, R]`` float32.

    Texels outside the layout hold ``fill``; with ``gutter`` the gutter texels copy their
    nearest covered texel instead.
    """
    v = np.asarray(values, dtype=np.float32)
    r = raster.size
    out = np.full((v.shape[1], r * r), fill, dtype=np.float32)
    out[:, raster.texels.numpy()] = v.T
    if gutter:
        out[:, raster.gutter_dst] = out[:, raster.gutter_src]
    return torch.from_numpy(out.reshape(v.shape[1], r, r))


def interpolate_uv(raster: UVRaster, attr: torch.Tensor) -> torch.Tensor:
    """Per-vertex attributes ``[V, C]`` → texture ``[C, R, R]`` float32 (0 outside the
    layout). No gradient; see :func:`facerefl.render.raster.interpolate` for one."""
    return scatter_texels(raster, interpolate_texels(raster, attr))


def fill_gutter(raster: UVRaster, tex: torch.Tensor) -> torch.Tensor:
    """A copy of ``tex [C, R, R]`` whose gutter texels repeat their nearest covered texel."""
    out = tex.clone().reshape(tex.shape[0], -1)
    out[:, torch.from_numpy(raster.gutter_dst)] = out[:, torch.from_numpy(raster.gutter_src)]
    return out.view_as(tex)


def pad_texture(tex: torch.Tensor, valid: torch.Tensor, width: int) -> torch.Tensor:
    """Copy the nearest valid texel into invalid texels at most ``width`` texels away.

    The general form of the gutter, for any mask.

    Args:
        tex: ``[C, R, R]`` texture (any dtype/range).
        valid: ``[R, R]`` bool texels that hold data.
        width: gutter width in texels.

    Returns:
        ``[C, R, R]``: ``tex`` with the gutter filled; texels farther away are unchanged.
    """
    dst, src = _gutter(valid.detach().cpu().numpy().astype(bool), width)
    out = tex.clone().reshape(tex.shape[0], -1)
    out[:, torch.from_numpy(dst).to(tex.device)] = out[:, torch.from_numpy(src).to(tex.device)]
    return out.view_as(tex)
