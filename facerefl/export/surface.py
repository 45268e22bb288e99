"""The mesh as the exporters see it: numpy arrays, vertex tangents, asset placement.

:class:`SurfaceMesh` is the single boundary where the renderer's torch mesh becomes
numpy for the file writers (glTF, OBJ).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from facerefl.render.raster import Mesh
from facerefl.render.raster import vertex_normals as raster_normals
from facerefl.render.raster import vertex_tangents as raster_tangents


def _np(x: torch.Tensor | np.ndarray, dtype) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(x), dtype=dtype)


def _unit(v: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), eps)


@dataclass(frozen=True)
class SurfaceMesh:
    """A triangle mesh with one UV and one normal per vertex (numpy, CPU).

    Attributes:
        positions: ``[V, 3]`` float32 vertex positions (camera frame or asset frame, see
            :func:`to_asset_frame`).
        faces: ``[F, 3]`` uint32 vertex indices, counter-clockwise seen from outside.
        uvs: ``[V, 2]`` float32 texture coordinates in [0, 1], v = 0 at the bottom of the
            texture image (OBJ/OpenGL; glTF export flips v).
        normals: ``[V, 3]`` float32 unit outward vertex normals, same frame as positions.
    """

    positions: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray
    normals: np.ndarray

    def __post_init__(self) -> None:
        v = self.positions.shape[0] if self.positions.ndim == 2 else -1
        if self.positions.shape != (v, 3) or v < 3:
            raise ValueError(f"positions must be [V, 3] with V >= 3, got {self.positions.shape}")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3 or self.faces.shape[0] == 0:
            raise ValueError(f"faces must be [F, 3] with F >= 1, got {self.faces.shape}")
        if self.uvs.shape != (v, 2):
            raise ValueError(f"uvs must be [V, 2] = [{v}, 2] (one UV per vertex), got {self.uvs.shape}")
        if self.normals.shape != (v, 3):
            raise ValueError(f"normals must be [V, 3] = [{v}, 3], got {self.normals.shape}")
        if int(self.faces.max()) >= v:
            raise ValueError(f"faces index vertex {int(self.faces.max())} but there are only {v} vertices")
        if not (np.all(np.isfinite(self.positions)) and np.all(np.isfinite(self.uvs))):
            raise ValueError("mesh positions or uvs hold NaN or infinite values")


def make_surface(
    positions: torch.Tensor | np.ndarray,
    faces: torch.Tensor | np.ndarray,
    uvs: torch.Tensor | np.ndarray,
    normals: torch.Tensor | np.ndarray | None = None,
) -> SurfaceMesh:
    """Build a :class:`SurfaceMesh` from tensors or arrays; normals are computed when absent.

    Shapes: positions ``[V, 3]``, faces ``[F, 3]`` (integer), uvs ``[V, 2]``, normals ``[V, 3]``.
    """
    pos = _np(positions, np.float32)
    tri = _np(faces, np.int64)
    if tri.size and int(tri.min()) < 0:
        raise ValueError("faces hold negative vertex indices")
    if normals is None:
        nrm = raster_normals(torch.from_numpy(pos).double(), torch.from_numpy(tri)).numpy()
    else:
        nrm = _unit(_np(normals, np.float32))
    return SurfaceMesh(pos, tri.astype(np.uint32), _np(uvs, np.float32), nrm.astype(np.float32))


def surface_from_mesh(mesh: Mesh) -> SurfaceMesh:
    """The renderer's camera-frame :class:`~facerefl.render.raster.Mesh` as a :class:`SurfaceMesh`."""
    return make_surface(mesh.vertices, mesh.faces, mesh.uvs, mesh.normals)


def vertex_tangents(mesh: SurfaceMesh) -> np.ndarray:
    """Per-vertex tangent frames in the glTF ``TANGENT`` layout.

    T follows dP/du (orthogonal to the vertex normal) and the handedness w makes
    ``B = w * cross(N, T)`` follow dP/dv; v = 0 at the bottom, so B points "up" in the
    texture image, the OpenGL/glTF green-up convention. Computed by
    :func:`facerefl.render.raster.vertex_tangents`, the frames the renderer shades with.

    Returns:
        ``[V, 4]`` float32: unit tangent xyz (same frame as positions) and w in {-1, +1}.
    """
    t = raster_tangents(
        torch.from_numpy(mesh.positions).double(),
        torch.from_numpy(mesh.faces.astype(np.int64)),
        torch.from_numpy(mesh.uvs).double(),
        torch.from_numpy(mesh.normals).double(),
    ).numpy()
    # Vertices with no usable UV gradient get any tangent perpendicular to N.
    bad = ~np.isfinite(t[:, :3]).all(axis=1) | (np.linalg.norm(t[:, :3], axis=1) < 0.5)
    if np.any(bad):
        n = mesh.normals[bad].astype(np.float64)
        helper = np.where(np.abs(n[:, 0:1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
        t[bad, :3] = _unit(helper - n * np.sum(helper * n, axis=1, keepdims=True))
        t[bad, 3] = 1.0
    return t.astype(np.float32)


def head_centre(positions: np.ndarray) -> np.ndarray:
    """Centre of the axis-aligned bounding box of ``positions`` (``[V, 3]``) -> ``[3]``."""
    return 0.5 * (positions.min(axis=0) + positions.max(axis=0))


def to_asset_frame(mesh: SurfaceMesh, metres_per_unit: float = 1.0) -> SurfaceMesh:
    """Place a camera-frame mesh for a stand-alone asset: centred at the origin, in metres.

    The camera frame (+x right, +y up, +z towards the viewer) already matches glTF's
    (+Y up, the asset's front facing +Z), so only a translation (bounding-box centre to
    the origin) and a uniform scale are applied; normals are unchanged.
    """
    if not metres_per_unit > 0:
        raise ValueError(f"metres_per_unit must be positive, got {metres_per_unit}")
    pos = (mesh.positions - head_centre(mesh.positions)) * metres_per_unit
    return SurfaceMesh(pos.astype(np.float32), mesh.faces, mesh.uvs, mesh.normals)
