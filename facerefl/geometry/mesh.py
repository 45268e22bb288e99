"""Per-photo face mesh and pinhole camera from the face-mesh landmarks.

Projection model: a pinhole camera (docs/conventions.md) with its principal point at the
image centre and a fixed field of view (default 30° across the longer side, a portrait-lens
framing; EXIF focal lengths are too often missing or cropped away to rely on). Each
template vertex is *back-projected* through its landmark pixel: it lies on the camera ray
of that pixel, at the depth ``d + z_i / s`` where ``z_i`` is mediapipe's relative depth
(pixels), ``s`` the face's scale in pixels per centimetre (the RMS spread of the 3-D
landmarks over that of the canonical template, which is in cm) and ``d = f / s`` the
distance at which a centimetre spans ``s`` pixels. So the mesh projects exactly onto the
landmarks (what unwrapping needs), is metric (cm) and keeps mediapipe's relief.
mediapipe's landmarks are close to weak-perspective, so this is a consistent reading of
them for any moderate field of view; the choice only changes the small perspective
effects (view directions, relief foreshortening).

The mesh covers the face only (forehead to chin, cheek to cheek): no ears, neck or hair.
"""

from __future__ import annotations

import hashlib
import math

import torch

from facerefl.geometry.landmarks import Landmarks
from facerefl.geometry.template import NUM_VERTICES, Template
from facerefl.render.raster import Camera, Mesh, vertex_normals

__all__ = ["DEFAULT_FOV_DEG", "camera_for_image", "face_scale", "face_mesh_from_landmarks",
           "subdivide"]

DEFAULT_FOV_DEG = 30.0


def camera_for_image(height: int, width: int, fov_deg: float = DEFAULT_FOV_DEG) -> Camera:
    """Pinhole camera with square pixels, centred principal point and ``fov_deg`` across
    the longer image side."""
    if not 1.0 <= fov_deg <= 120.0:
        raise ValueError(f"fov_deg must be in [1, 120] degrees, got {fov_deg}")
    f = 0.5 * max(height, width) / math.tan(math.radians(fov_deg) / 2.0)
    return Camera(fx=f, fy=f, cx=width / 2.0, cy=height / 2.0, width=width, height=height)


def face_scale(points: torch.Tensor, template_vertices: torch.Tensor) -> torch.Tensor:
    """Pixels per centimetre: RMS spread of ``points [468, 3]`` (pixels) over that of
    ``template_vertices [468, 3]`` (cm). Rotation invariant. Returns a 0-d tensor."""
    p = points - points.mean(0)
    q = template_vertices - template_vertices.mean(0)
    return (p.square().sum() / q.square().sum()).sqrt()


def face_mesh_from_landmarks(landmarks: Landmarks, template: Template,
                             fov_deg: float = DEFAULT_FOV_DEG,
                             subdivisions: int = 0,
                             camera: Camera | None = None) -> tuple[Mesh, Camera]:
    """The face mesh in the camera frame, and its camera.

    Args:
        landmarks: the photo's landmarks (pixels; 478 points, the first 468 are used).
        template: the canonical mesh (topology, UVs, metric size).
        fov_deg: camera field of view across the longer image side, degrees.
        subdivisions: rounds of :func:`subdivide` (each multiplies the triangles by 4).
        camera: use this camera instead of :func:`camera_for_image` (e.g. the full
            photo's camera carried over to a crop); ``fov_deg`` is then ignored.

    Returns:
        ``Mesh`` (vertices ``[V, 3]`` camera frame in cm, the first 468 exactly projecting
        onto the landmarks; faces ``[F, 3]`` int64 CCW from the camera; uvs ``[V, 2]``;
        unit vertex normals) and its ``Camera``.
    """
    h, w = landmarks.image_size
    cam = camera if camera is not None else camera_for_image(h, w, fov_deg)
    if (cam.height, cam.width) != (h, w):
        raise ValueError(f"camera is {cam.height}×{cam.width} but the landmarks' image is {h}×{w}")
    pts = landmarks.points[:NUM_VERTICES].to(template.vertices.dtype)
    s = face_scale(pts, template.vertices)
    depth = cam.fx / s + (pts[:, 2] - pts[:, 2].mean()) / s  # cm along −z
    x = (pts[:, 0] - cam.cx) * depth / cam.fx
    y = -(pts[:, 1] - cam.cy) * depth / cam.fy
    verts = torch.stack([x, y, -depth], dim=1)
    faces, uvs = template.faces, template.uvs.to(verts.dtype)
    normals = vertex_normals(verts, faces)
    for _ in range(int(subdivisions)):
        verts, faces, uvs = subdivide(verts, faces, uvs, normals)
        normals = vertex_normals(verts, faces)
    return Mesh(verts, faces, uvs, normals), cam


_EDGE_CACHE: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}


def _unique_edges(faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unique undirected edges ``[E, 2]`` and, per face corner edge, its index ``[F, 3]``.

    Corner edge k of a face joins vertices k and (k + 1) mod 3. Cached per topology (the
    template's is the same for every photo).
    """
    key = hashlib.sha1(faces.detach().cpu().long().numpy().tobytes()).hexdigest()
    if key not in _EDGE_CACHE:
        if len(_EDGE_CACHE) > 8:
            _EDGE_CACHE.clear()
        _EDGE_CACHE[key] = _unique_edges_uncached(faces.detach().cpu())
    edges, corner = _EDGE_CACHE[key]
    return edges.to(faces.device), corner.to(faces.device)


def _unique_edges_uncached(faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    f = faces.long()
    e = torch.stack([f, f.roll(-1, dims=1)], dim=-1).reshape(-1, 2)
    e_sorted = e.sort(dim=1).values
    edges, inverse = torch.unique(e_sorted, dim=0, return_inverse=True)
    return edges, inverse.view(-1, 3)


def subdivide(vertices: torch.Tensor, faces: torch.Tensor, uvs: torch.Tensor,
              normals: torch.Tensor, alpha: float = 0.75) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One round of 1-to-4 subdivision with Phong-tessellated edge midpoints.

    Old vertices keep their index and position (so the first 468 stay on the landmarks);
    each edge gains a vertex at its midpoint pulled towards the tangent planes of its two
    end vertices (Phong tessellation with shape factor ``alpha``), which rounds the
    surface instead of keeping it flat. UVs are interpolated linearly.

    Args:
        vertices: ``[V, 3]`` any frame; faces ``[F, 3]`` int64 CCW; uvs ``[V, 2]``;
        normals: ``[V, 3]`` unit vertex normals.

    Returns:
        vertices ``[V + E, 3]``, faces ``[4F, 3]`` int64 (same orientation), uvs ``[V + E, 2]``.
    """
    edges, corner_edge = _unique_edges(faces)
    a, b = edges[:, 0], edges[:, 1]
    m = 0.5 * (vertices[a] + vertices[b])

    def onto_plane(i: torch.Tensor) -> torch.Tensor:
        n = normals[i]
        return m - ((m - vertices[i]) * n).sum(-1, keepdim=True) * n

    mid = (1.0 - alpha) * m + alpha * 0.5 * (onto_plane(a) + onto_plane(b))
    new_v = torch.cat([vertices, mid], dim=0)
    new_uv = torch.cat([uvs, 0.5 * (uvs[a] + uvs[b])], dim=0)
    nv = vertices.shape[0]
    f = faces.long()
    e01, e12, e20 = (corner_edge[:, k] + nv for k in range(3))
    new_f = torch.cat([
        torch.stack([f[:, 0], e01, e20], 1),
        torch.stack([e01, f[:, 1], e12], 1),
        torch.stack([e20, e12, f[:, 2]], 1),
        torch.stack([e01, e12, e20], 1),
    ], dim=0)
    return new_v, new_f, new_uv

