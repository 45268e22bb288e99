from __future__ import annotations

import torch

from bench.export import _sphere_mesh
from facerefl.render.raster import vertex_normals


def test_bench_fallback_sphere_is_a_closed_outward_mesh():
    mesh = _sphere_mesh(2.0, 10.0, n_lat=8, n_lon=12)
    assert mesh.vertices.shape == (9 * 13, 3) and mesh.faces.shape == (2 * 8 * 12, 3)
    centre = torch.tensor([0.0, 0.0, -10.0])
    assert torch.allclose((mesh.vertices - centre).norm(dim=1), torch.tensor(2.0), atol=1e-5)
    # winding agrees with the stored outward normals (pole vertices touch only degenerate faces)
    computed = vertex_normals(mesh.vertices, mesh.faces)
    ok = mesh.normals[:, 1].abs() < 0.99
    assert float((computed[ok] * mesh.normals[ok]).sum(1).min()) > 0.9
    assert float(mesh.uvs.min()) == 0.0 and float(mesh.uvs.max()) == 1.0
