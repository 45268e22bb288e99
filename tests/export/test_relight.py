from __future__ import annotations

import pytest
import torch

from facerefl.export.relight import (
    FaceAppearance,
    face_camera,
    match_exposure,
    mesh_centre,
    render_orbit,
    render_view,
    render_views,
    rotate_mesh,
    rotate_sh_map,
    yaw_rotation,
)
from facerefl.render.maps import ReflectanceMaps
from facerefl.render.raster import Camera, Mesh, project_points
from facerefl.render.sh import sh_rotate

from .conftest import constant_light


def test_yaw_turns_view_axis_towards_image_right():
    r = yaw_rotation(90.0)
    assert torch.allclose(r @ torch.tensor([0.0, 0.0, 1.0]), torch.tensor([1.0, 0.0, 0.0]), atol=1e-6)
    assert torch.allclose(r @ r.T, torch.eye(3), atol=1e-6)


def test_white_furnace_through_the_export_renderer(scene):
    mesh, camera, _ = scene
    normal = torch.zeros(3, 4, 4)
    normal[2] = 1.0
    white = FaceAppearance(ReflectanceMaps(torch.ones(3, 4, 4), torch.zeros(1, 4, 4), normal))
    view = render_view(mesh, camera, white, constant_light(1.0))
    inside = view.mask[0] > 0.5
    assert view.rgb.shape == (3, 64, 64) and 2000 < int(inside.sum()) < 4096
    assert torch.allclose(view.rgb[:, inside], torch.ones(1), atol=1e-4)
    assert float(view.rgb[:, ~inside].abs().max()) == 0.0


def _colours_at(view, points, camera):
    """Nearest-pixel colours ``[3, N]`` and coverage ``[N]`` of camera-frame points ``[N, 3]``."""
    px = project_points(points, camera)
    col = px[:, 0].floor().long().clamp(0, camera.width - 1)
    row = px[:, 1].floor().long().clamp(0, camera.height - 1)
    return view.rgb[:, row, col], view.mask[0, row, col] > 0.5


def test_orbit_keeps_diffuse_colour_of_each_surface_point(scene):
    """Orbiting the camera under a world-fixed light: a point's diffuse colour must not change."""
    mesh, camera, face = scene
    diffuse_only = FaceAppearance(ReflectanceMaps(face.maps.albedo, torch.zeros(1, 8, 8), face.maps.normal))
    light = constant_light(0.5)
    light[:, 3] = 0.6  # brighter from +x
    light[:, 1] = -0.3  # darker from above
    deg = 30.0
    base = render_view(mesh, camera, diffuse_only, light)
    turned = render_orbit(mesh, camera, diffuse_only, light, deg)
    rot = yaw_rotation(deg)
    c = mesh_centre(mesh)
    # points facing both cameras (well inside both silhouettes)
    n0 = mesh.normals
    keep = (n0[:, 2] > 0.5) & ((n0 @ rot.T)[:, 2] > 0.5)
    p0 = mesh.vertices[keep]
    a, ma = _colours_at(base, p0, camera)
    b, mb = _colours_at(turned, (p0 - c) @ rot.T + c, camera)
    ok = ma & mb
    assert int(ok.sum()) > 20
    err = (a - b)[:, ok].abs().mean()
    assert err < 0.005
    # keeping the light fixed to the camera instead changes the colours a lot
    fixed = render_view(rotate_mesh(mesh, rot, c), camera, diffuse_only, light)
    b2, _ = _colours_at(fixed, (p0 - c) @ rot.T + c, camera)
    assert (a - b2)[:, ok].abs().mean() > 5 * err


def test_render_views_shares_one_rasterization(scene):
    mesh, camera, face = scene
    a, b = constant_light(0.4), constant_light(0.2)
    b[:, 3] = 0.5
    views = render_views(mesh, camera, face, [a, b])
    assert torch.equal(views[1].rgb, render_view(mesh, camera, face, b).rgb)
    assert torch.equal(views[0].mask, views[1].mask)
    assert render_views(mesh, camera, face, []) == []
    with pytest.raises(ValueError, match=r"\[3, 9\]"):
        render_views(mesh, camera, face, [torch.zeros(27)])


def test_rotate_sh_map_matches_rotating_each_texel():
    vis = torch.randn(9, 3, 5)
    rot = yaw_rotation(40.0)
    out = rotate_sh_map(vis, rot)
    assert torch.allclose(out[:, 1, 2], sh_rotate(vis[:, 1, 2], rot), atol=1e-5)


def test_match_exposure_equalises_mean_luminance():
    ref = constant_light(0.7)
    env = torch.randn(3, 9, generator=torch.Generator().manual_seed(5))
    env[:, 0] = torch.tensor([3.0, 2.0, 1.0])
    out = match_exposure(env, ref)
    w = torch.tensor([0.2126, 0.7152, 0.0722])
    assert float((w * out[:, 0]).sum()) == pytest.approx(float((w * ref[:, 0]).sum()), rel=1e-5)
    assert torch.allclose(out / out[1, 0], env / env[1, 0])  # only a scale
    dark = torch.zeros(3, 9)
    assert torch.equal(match_exposure(dark, ref), dark)


def test_face_appearance_validates(scene):
    _, _, face = scene
    with pytest.raises(ValueError, match="vis_sh"):
        FaceAppearance(face.maps, vis_sh=torch.zeros(4, 8, 8))
    with pytest.raises(ValueError, match="together"):
        FaceAppearance(face.maps, bent_normal=torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="spec_model"):
        FaceAppearance(face.maps, spec_model="phong")
    batch = ReflectanceMaps(*(face.maps.get(k)[None] for k in ("albedo", "specular", "normal")))
    with pytest.raises(ValueError, match=r"maps\.face"):
        FaceAppearance(batch)


def test_face_camera_frames_the_projected_mesh():
    """The crop holds every vertex, the face spans it up to the margin, and it is square."""
    gen = torch.Generator().manual_seed(0)
    verts = torch.rand(50, 3, generator=gen) * torch.tensor([4.0, 6.0, 2.0]) + torch.tensor([3.0, -1.0, -40.0])
    mesh = Mesh(verts, torch.tensor([[0, 1, 2]]), torch.zeros(50, 2))
    cam = Camera(800.0, 800.0, 320.0, 240.0, 640, 480)
    framed = face_camera(mesh, cam, 256, margin=0.1)
    assert (framed.width, framed.height) == (256, 256) and framed.fx == pytest.approx(framed.fy)
    px = project_points(verts, framed)[:, :2]
    lo, hi = px.amin(0), px.amax(0)
    assert float(lo.min()) >= 0 and float(hi.max()) <= 256
    assert float((hi - lo).max()) == pytest.approx(256 / 1.2, rel=1e-4)  # the longer side, margin 0.1 each side
    with pytest.raises(ValueError, match="size"):
        face_camera(mesh, cam, 0)
    with pytest.raises(ValueError, match="margin"):
        face_camera(mesh, cam, 64, margin=-0.1)
