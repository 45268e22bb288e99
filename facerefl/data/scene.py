"""Random scenes for synthetic photos: face shape variation, head pose and camera.

A scene places the (deformed) template in the camera frame (docs/conventions.md; cm)
in front of a pinhole camera at the origin. Everything random comes from the
``np.random.Generator`` passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from facerefl.data.lighting import rotation_matrix
from facerefl.geometry.mesh import subdivide
from facerefl.geometry.template import Template
from facerefl.render.raster import Camera, Mesh, vertex_normals

#: Head rotation pivot in the template frame (cm): about the centre of the skull.
PIVOT = np.array([0.0, -1.0, -2.5])


@dataclass(frozen=True)
class SceneSettings:
    """Ranges of the scene randomization (uniform unless stated).

    Attributes:
        yaw_deg, pitch_deg, roll_deg: maximum absolute head rotation angles.
        fov_deg: ``(lo, hi)`` horizontal field of view of the camera, degrees.
        face_fill: ``(lo, hi)`` fraction of the image height spanned by the face.
        shift: maximum offset of the face centre from the image centre, as a fraction
            of the image size.
        scale_jitter: maximum relative change of face width, height and depth.
        bumps: number of symmetric smooth deformation bumps.
        bump_cm: std-dev of a bump's displacement (cm).
        subdivisions: rounds of Phong subdivision of the template mesh.
    """

    yaw_deg: float = 35.0
    pitch_deg: float = 20.0
    roll_deg: float = 10.0
    fov_deg: tuple[float, float] = (18.0, 45.0)
    face_fill: tuple[float, float] = (0.5, 0.75)
    shift: float = 0.06
    scale_jitter: float = 0.08
    bumps: int = 6
    bump_cm: float = 0.3
    subdivisions: int = 1


@dataclass(frozen=True)
class Scene:
    """A posed face in front of a camera.

    Attributes:
        mesh: camera-frame mesh (cm), template UVs, vertex normals; the first 468
            vertices are the template's.
        camera: pinhole camera of the rendered image.
        head_rotation: ``[3, 3]`` float64, template frame -> camera frame rotation.
        angles_deg: ``(yaw, pitch, roll)`` of the head.
    """

    mesh: Mesh
    camera: Camera
    head_rotation: np.ndarray
    angles_deg: tuple[float, float, float]


def deform_template(vertices: np.ndarray, rng: np.random.Generator,
                    settings: SceneSettings) -> np.ndarray:
    """Smooth, left-right symmetric random deformation of template vertices ``[V, 3]`` (cm).

    A per-axis scale (face width / height / depth) plus ``settings.bumps`` Gaussian
    radial-basis displacements centred on random vertices and mirrored across x = 0.
    """
    v = vertices * (1.0 + rng.uniform(-settings.scale_jitter, settings.scale_jitter, size=3))
    out = v.copy()
    for _ in range(settings.bumps):
        c = v[int(rng.integers(len(v)))]
        sigma = rng.uniform(2.0, 5.0)
        d = rng.normal(0.0, settings.bump_cm, size=3)
        for cc, dd in ((c, d), (c * [-1, 1, 1], d * [-1, 1, 1])):
            w = np.exp(-0.5 * np.sum((v - cc) ** 2, axis=1) / sigma**2)
            out += 0.5 * w[:, None] * dd
    return out


def sample_scene(rng: np.random.Generator, template: Template, image_size: int,
                 settings: SceneSettings = SceneSettings()) -> Scene:
    """Draw a deformed, posed face and a camera that frames it at ``image_size``^2."""
    s = settings
    verts = deform_template(template.vertices.numpy().astype(np.float64), rng, s)
    yaw, pitch, roll = (float(rng.uniform(-a, a)) for a in (s.yaw_deg, s.pitch_deg, s.roll_deg))
    rot = rotation_matrix(math.radians(yaw), math.radians(pitch), math.radians(roll))
    fov = math.radians(rng.uniform(*s.fov_deg))
    f = 0.5 * image_size / math.tan(0.5 * fov)
    face_h = float(np.ptp(verts[:, 1]))
    dist = f * face_h / (rng.uniform(*s.face_fill) * image_size)
    shift = rng.uniform(-s.shift, s.shift, size=2) * image_size * dist / f
    posed = (verts - PIVOT) @ rot.T + PIVOT
    centre = 0.5 * (posed.min(0) + posed.max(0))
    # Put the face centre at depth -dist, shifted in the image plane.
    posed = posed - centre + np.array([shift[0], shift[1], -dist])
    mesh = mesh_from_vertices(torch.as_tensor(posed, dtype=torch.float32), template, s.subdivisions)
    cam = Camera(fx=f, fy=f, cx=image_size / 2.0, cy=image_size / 2.0,
                 width=image_size, height=image_size)
    return Scene(mesh, cam, rot, (yaw, pitch, roll))


def mesh_from_vertices(vertices: torch.Tensor, template: Template, subdivisions: int = 1) -> Mesh:
    """The rendered mesh of a scene from its 468 posed template vertices ``[468, 3]``.

    Deterministic, so evaluation can rebuild exactly the mesh an example was rendered
    with from ``ReflectanceBatch.vertices`` (camera frame, cm).
    """
    v, faces, uvs = vertices, template.faces, template.uvs.to(vertices.dtype)
    normals = vertex_normals(v, faces)
    for _ in range(subdivisions):
        v, faces, uvs = subdivide(v, faces, uvs, normals)
        normals = vertex_normals(v, faces)
    return Mesh(v, faces, uvs, normals)


def camera_from_intrinsics(intrinsics: torch.Tensor, size: int) -> Camera:
    """The square-image camera of ``ReflectanceBatch.intrinsics[i]`` = (fx, fy, cx, cy)."""
    fx, fy, cx, cy = (float(x) for x in intrinsics)
    return Camera(fx=fx, fy=fy, cx=cx, cy=cy, width=size, height=size)
