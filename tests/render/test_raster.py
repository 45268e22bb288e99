import math

import pytest
import torch

from facerefl.render.raster import (
    Camera, Mesh, interpolate, project_points, rasterize, rasterize_visibility, vertex_normals,
)


def _uv_sphere(n_lat=24, n_lon=48, radius=1.0, center=(0.0, 0.0, -4.0)):
    """Closed UV sphere (CCW seen from outside) with equirectangular UVs."""
    verts, uvs = [], []
    for i in range(n_lat + 1):
        th = math.pi * i / n_lat
        for j in range(n_lon + 1):
            ph = 2 * math.pi * j / n_lon
            verts.append([math.sin(th) * math.cos(ph), math.cos(th), -math.sin(th) * math.sin(ph)])
            uvs.append([j / n_lon, 1 - i / n_lat])
    faces = []
    for i in range(n_lat):
        for j in range(n_lon):
            a, b = i * (n_lon + 1) + j, (i + 1) * (n_lon + 1) + j
            faces += [[a, b, a + 1], [a + 1, b, b + 1]]
    v = torch.tensor(verts) * radius + torch.tensor(center)
    return Mesh(v, torch.tensor(faces), torch.tensor(uvs))


def _cam(n=64, f=None):
    f = f or n * 1.2
    return Camera(fx=f, fy=f, cx=n / 2, cy=n / 2, width=n, height=n)


def test_triangle_coverage_matches_area():
    cam = _cam(128)
    # A triangle facing the camera at depth 5; its projected area is known analytically.
    v = torch.tensor([[-1.0, -1.0, -5.0], [1.5, -1.0, -5.0], [0.0, 1.2, -5.0]])
    mesh = Mesh(v, torch.tensor([[0, 1, 2]]), torch.zeros(3, 2))
    g = rasterize(mesh, cam)
    s = project_points(v, cam)
    area = 0.5 * abs(float((s[1, 0] - s[0, 0]) * (s[2, 1] - s[0, 1]) - (s[2, 0] - s[0, 0]) * (s[1, 1] - s[0, 1])))
    covered = float(g.mask.sum())
    assert abs(covered - area) / area < 0.03


def test_nearer_triangle_wins():
    cam = _cam(32)
    near = [[-1, -1, -3.0], [1, -1, -3.0], [0, 1, -3.0]]
    far = [[-1, -1, -6.0], [1, -1, -6.0], [0, 1, -6.0]]
    for order in ([near, far], [far, near]):
        v = torch.tensor(order[0] + order[1])
        mesh = Mesh(v, torch.tensor([[0, 1, 2], [3, 4, 5]]), torch.zeros(6, 2))
        g = rasterize(mesh, cam)
        nearer_id = 0 if order[0] is near else 1
        assert int(g.tri_id[0, 16, 16]) == nearer_id
        assert abs(float(g.depth[0, 16, 16]) - 3.0) < 1e-4


def test_perspective_correct_attributes_reproject_to_pixel_centres():
    cam = _cam(64)
    # A strongly tilted quad: screen-space-linear interpolation would be visibly wrong.
    v = torch.tensor([[-1.0, -1.0, -2.0], [1.0, -1.0, -2.0], [1.0, 1.0, -8.0], [-1.0, 1.0, -8.0]])
    uv = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    mesh = Mesh(v, torch.tensor([[0, 1, 2], [0, 2, 3]]), uv)
    g = rasterize(mesh, cam)
    m = g.mask[0, ..., 0] > 0
    pix = project_points(g.position[0][m], cam)
    ii, jj = torch.nonzero(m, as_tuple=True)
    assert torch.allclose(pix[:, 0], jj.float() + 0.5, atol=1e-3)
    assert torch.allclose(pix[:, 1], ii.float() + 0.5, atol=1e-3)
    # UV is affine in the 3D position on this planar quad: u = (x+1)/2.
    assert torch.allclose(g.uv[0][m][:, 0], (g.position[0][m][:, 0] + 1) / 2, atol=1e-4)


def test_sphere_normals_tangents_and_view():
    mesh = _uv_sphere()
    cam = _cam(96, f=200.0)
    g = rasterize(mesh, cam)
    m = g.mask[0, ..., 0] > 0
    assert int(m.sum()) > 1000
    n = g.normal[0][m]
    expect = torch.nn.functional.normalize(g.position[0][m] - torch.tensor([0.0, 0.0, -4.0]), dim=-1)
    assert float((n * expect).sum(-1).min()) > 0.99
    t, b = g.tangent[0][m], g.bitangent[0][m]
    assert float((t * n).sum(-1).abs().max()) < 1e-4
    assert float((b * n).sum(-1).abs().max()) < 1e-4
    assert float((b.norm(dim=-1) - 1).abs().max()) < 1e-4
    # Visible points of a convex surface face the camera.
    assert float((n * g.view_dir[0][m]).sum(-1).min()) > -0.05
    # Empty pixels are zero and -1.
    assert bool((g.tri_id[0][~m] == -1).all()) and float(g.normal[0][~m].abs().max()) == 0.0


def test_tangent_points_along_increasing_u():
    cam = _cam(32)
    v = torch.tensor([[-1.0, -1.0, -3.0], [1.0, -1.0, -3.0], [0.0, 1.0, -3.0]])
    uv = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.5, 1.0]])
    g = rasterize(Mesh(v, torch.tensor([[0, 1, 2]]), uv), cam)
    assert torch.allclose(g.tangent[0, 16, 16], torch.tensor([1.0, 0.0, 0.0]), atol=1e-5)
    assert torch.allclose(g.bitangent[0, 16, 16], torch.tensor([0.0, 1.0, 0.0]), atol=1e-5)
    assert torch.allclose(g.normal[0, 16, 16], torch.tensor([0.0, 0.0, 1.0]), atol=1e-5)


def test_attribute_interpolation_is_differentiable():
    mesh = _uv_sphere(8, 16)
    cam = _cam(32, f=60.0)
    tri, bary = rasterize_visibility(mesh, cam)
    attr = torch.rand(mesh.vertices.shape[0], 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a: interpolate(a, mesh.faces, tri[:6, :6], bary[:6, :6].double()), (attr,))


def test_vertex_normals_of_sphere_point_outwards():
    mesh = _uv_sphere(12, 24)
    n = vertex_normals(mesh.vertices, mesh.faces)
    radial = torch.nn.functional.normalize(mesh.vertices - torch.tensor([0.0, 0.0, -4.0]), dim=-1)
    # Poles are degenerate in a UV sphere; the rest must agree closely.
    assert float((n * radial).sum(-1).median()) > 0.999


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"\[V, 3\]"):
        Mesh(torch.zeros(3, 2), torch.zeros(1, 3, dtype=torch.long), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="uvs"):
        Mesh(torch.zeros(3, 3), torch.zeros(1, 3, dtype=torch.long), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="integer"):
        Mesh(torch.zeros(3, 3), torch.zeros(1, 3), torch.zeros(3, 2))
    with pytest.raises(ValueError):
        Camera(1, 1, 0, 0, 0, 10)
    with pytest.raises(ValueError, match="backend"):
        rasterize(_uv_sphere(4, 8), _cam(8), backend="nope")


@pytest.mark.gpu
def test_nvdiffrast_matches_torch_backend():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    pytest.importorskip("nvdiffrast.torch")
    mesh = _uv_sphere()
    cam = _cam(128, f=260.0)
    a = rasterize(mesh, cam)
    b = rasterize(mesh.to("cuda"), cam, backend="nvdiffrast")
    agree = (a.tri_id == b.tri_id.cpu()).float().mean()
    assert float(agree) > 0.995
    m = (a.tri_id == b.tri_id.cpu()) & (a.tri_id >= 0)
    assert float((a.uv[m] - b.uv.cpu()[m]).abs().max()) < 1e-3
