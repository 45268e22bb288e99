"""Shared fixtures for the exporter tests: a small UV sphere in the camera frame and maps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from facerefl.export.surface import SurfaceMesh, make_surface


def uv_sphere(n_lat: int = 10, n_lon: int = 16, radius: float = 0.1, centre=(0.0, 0.0, -0.5)) -> SurfaceMesh:
    """Latitude-longitude sphere, seam vertices duplicated, u = longitude, v = up (v=0 south pole).

    Faces are counter-clockwise seen from outside; u increases towards +x on the +z side.
    """
    verts, uvs = [], []
    for i in range(n_lat + 1):
        theta = math.pi * i / n_lat  # 0 at the north pole (+y)
        for j in range(n_lon + 1):
            phi = 2.0 * math.pi * j / n_lon
            x = math.sin(theta) * math.sin(phi)
            z = math.sin(theta) * math.cos(phi)
            y = math.cos(theta)
            verts.append((x, y, z))
            uvs.append((j / n_lon, 1.0 - i / n_lat))
    faces = []
    row = n_lon + 1
    for i in range(n_lat):
        for j in range(n_lon):
            a, b = i * row + j, i * row + j + 1
            c, d = (i + 1) * row + j, (i + 1) * row + j + 1
            if i != 0:
                faces.append((a, c, b))
            if i != n_lat - 1:
                faces.append((b, c, d))
    faces = np.asarray(faces)
    used = np.unique(faces)  # drop the one unreferenced copy of each pole
    remap = np.full(len(verts), -1)
    remap[used] = np.arange(len(used))
    unit = np.asarray(verts, np.float64)[used]
    pos = unit * radius + np.asarray(centre)
    return make_surface(pos, remap[faces], np.asarray(uvs)[used], unit)


@pytest.fixture
def sphere() -> SurfaceMesh:
    return uv_sphere()


@pytest.fixture
def maps_tensors():
    """Deterministic albedo [3,32,48], specular [1,32,48], normal [3,32,48] (unit)."""
    g = torch.Generator().manual_seed(0)
    albedo = torch.rand(3, 32, 48, generator=g) * 0.8 + 0.1
    specular = torch.rand(1, 32, 48, generator=g) * 0.5
    n = torch.randn(3, 32, 48, generator=g) * 0.2
    n[2] = 1.0
    normal = n / n.norm(dim=0, keepdim=True)
    return albedo, specular, normal


@pytest.fixture
def scene():
    """A 10 cm sphere 60 cm in front of a 64x64 camera, as the renderer's Mesh, with uniform maps."""
    from facerefl.export.relight import FaceAppearance
    from facerefl.render.maps import ReflectanceMaps
    from facerefl.render.raster import Camera, Mesh

    s = uv_sphere(n_lat=16, n_lon=32, radius=10.0, centre=(0.0, 0.0, -60.0))
    mesh = Mesh(torch.from_numpy(s.positions), torch.from_numpy(s.faces.astype(np.int64)),
                torch.from_numpy(s.uvs), torch.from_numpy(s.normals))
    camera = Camera(fx=200.0, fy=200.0, cx=32.0, cy=32.0, width=64, height=64)
    normal = torch.zeros(3, 8, 8)
    normal[2] = 1.0
    maps = ReflectanceMaps(torch.full((3, 8, 8), 0.5), torch.full((1, 8, 8), 0.4), normal)
    return mesh, camera, FaceAppearance(maps, roughness=0.5)


def constant_light(value: float = 1.0) -> torch.Tensor:
    """SH of a constant radiance ``value`` in every direction, ``[3, 9]``."""
    light = torch.zeros(3, 9)
    light[:, 0] = value * 2.0 * math.sqrt(math.pi)
    return light
