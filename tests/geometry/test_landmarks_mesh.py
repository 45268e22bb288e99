"""Landmarks (mediapipe) and the per-photo mesh and camera."""

from __future__ import annotations


import cv2
import numpy as np
import pytest
import skimage.data
import torch

from facerefl.errors import InputError
from facerefl.geometry.landmarks import FaceTooSmallError, NoFaceError, detect_landmarks
from facerefl.geometry.mesh import camera_for_image, face_mesh_from_landmarks, face_scale, subdivide
from facerefl.geometry.photo import photo_from_array
from facerefl.render.raster import project_points, vertex_normals


def test_astronaut_landmarks(astro_mesh):
    lm, _, _ = astro_mesh
    assert lm.points.shape == (478, 3) and lm.image_size == (512, 512) and lm.num_faces == 1
    w, h = lm.face_size()
    assert 70 < w < 130 and 80 < h < 150
    x0, y0, x1, y1 = lm.bbox()
    assert 150 < x0 < x1 < 300 and 50 < y0 < y1 < 250  # her face, upper middle
    # Subject's left eye (263) is on the image's right; the iris points lie between corners.
    assert lm.points[263, 0] > lm.points[33, 0]
    assert lm.points[33, 0] < lm.points[468, 0] < lm.points[133, 0]


@pytest.mark.parametrize("name", ["coffee", "chelsea"])
def test_non_face_images_raise(name):
    with pytest.raises(NoFaceError, match="no face found"):
        detect_landmarks(photo_from_array(getattr(skimage.data, name)()))


def test_small_face_reports_its_size():
    small = cv2.resize(skimage.data.astronaut(), (192, 192), interpolation=cv2.INTER_AREA)
    with pytest.raises(FaceTooSmallError, match=r"only \d+×\d+ px .* at least 80 px") as e:
        detect_landmarks(photo_from_array(small))
    assert isinstance(e.value, InputError)


def test_several_faces_take_largest_with_warning():
    a = skimage.data.astronaut()[0:300, 100:350]
    small = np.pad(cv2.resize(a, (175, 210)), ((45, 45), (0, 0), (0, 0)))
    photo = photo_from_array(np.concatenate([small, a], 1))
    with pytest.warns(UserWarning, match="2 faces found in the photo; using the largest"):
        lm = detect_landmarks(photo)
    assert lm.num_faces == 2
    assert lm.bbox()[0] > 175  # the full-size copy on the right


def test_mesh_projects_onto_landmarks(astro_mesh, template):
    lm, mesh, cam = astro_mesh
    scr = project_points(mesh.vertices, cam)
    assert torch.allclose(scr[:, :2], lm.points[:468, :2], atol=1e-3)
    assert bool((mesh.vertices[:, 2] < 0).all())
    # Metric: the outer eye corners are as far apart as on the template (cm), give or
    # take the head's rotation.
    d = (mesh.vertices[33] - mesh.vertices[263]).norm()
    d_t = (template.vertices[33] - template.vertices[263]).norm()
    assert 0.8 < float(d / d_t) < 1.2
    # Faces are CCW seen from the camera: normals point towards it on the whole face.
    assert float((mesh.normals * -torch.nn.functional.normalize(mesh.vertices, dim=1)).sum(1).mean()) > 0.5
    assert cam.width == 512 and cam.cx == 256.0


def test_camera_and_scale():
    cam = camera_for_image(400, 600, fov_deg=90.0)
    assert abs(cam.fx - 300.0) < 1e-9 and cam.cy == 200.0
    with pytest.raises(ValueError, match="fov_deg"):
        camera_for_image(10, 10, fov_deg=0.1)
    v = torch.randn(468, 3)
    rot = torch.linalg.qr(torch.randn(3, 3)).Q
    assert abs(float(face_scale(3.5 * v @ rot.T + 7.0, v)) - 3.5) < 1e-4


def test_subdivide_keeps_vertices_and_rounds_the_surface():
    # An octahedron-ish cap: subdivided midpoints move outwards, towards the sphere.
    v = torch.tensor([[0, 0, 1], [1, 0, 0], [0, 1, 0], [-1, 0, 0], [0, -1, 0]], dtype=torch.float64)
    f = torch.tensor([[0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 4, 1]])
    uv = (v[:, :2] + 1) / 2
    n = torch.nn.functional.normalize(v, dim=1)  # sphere normals
    v2, f2, uv2 = subdivide(v, f, uv, n)
    assert v2.shape == (5 + 8, 3) and f2.shape == (16, 3) and uv2.shape == (13, 2)
    assert torch.equal(v2[:5], v)
    mids = v2[5:].norm(dim=1)
    assert bool((mids > 0.75).all())  # flat midpoints would be at |m| = 0.707
    # orientation kept: all new normals still point outwards
    fn = vertex_normals(v2, f2)
    assert bool(((fn * v2).sum(1) > 0).all())


def test_subdivided_face_mesh(astro_mesh, template):
    lm, mesh, _ = astro_mesh
    mesh2, _ = face_mesh_from_landmarks(lm, template, subdivisions=1)
    assert mesh2.faces.shape[0] == 4 * 898
    assert torch.allclose(mesh2.vertices[:468], mesh.vertices)


def test_crop_to_face_keeps_geometry_consistent(astronaut, astro_mesh):
    from facerefl.geometry.crop import crop_to_face
    from facerefl.geometry.mesh import camera_for_image

    lm, _, _ = astro_mesh
    cam = camera_for_image(512, 512)
    photo_c, lm_c, cam_c, crop = crop_to_face(astronaut, lm, cam, margin=0.5, max_side=128)
    assert max(photo_c.shape[1:]) == 128 and lm_c.image_size == tuple(photo_c.shape[1:])
    assert (cam_c.height, cam_c.width) == lm_c.image_size
    # Same rays: a crop pixel maps back to the photo pixel with the same direction.
    back_x = crop.x0 + lm_c.points[:, 0] / crop.scale_x
    back_y = crop.y0 + lm_c.points[:, 1] / crop.scale_y
    assert torch.allclose(back_x, lm.points[:, 0], atol=1e-3)
    assert torch.allclose(back_y, lm.points[:, 1], atol=1e-3)
    assert abs((cam_c.cx - lm_c.points[1, 0]) / cam_c.fx - (cam.cx - lm.points[1, 0]) / cam.fx) < 1e-6
    # The crop shows the face: landmarks found on it agree with the carried-over ones.
    again = detect_landmarks(photo_c, min_face_px=20)
    assert float((again.points[:468, :2] - lm_c.points[:468, :2]).abs().median()) < 2.0
    # The colours match the photo at the same places.
    i, j = int(lm_c.points[1, 1]), int(lm_c.points[1, 0])
    pi, pj = int(lm.points[1, 1]), int(lm.points[1, 0])
    assert float((photo_c[:, i, j] - astronaut[:, pi, pj]).abs().max()) < 0.15
