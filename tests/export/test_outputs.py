from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
import trimesh

from facerefl.assets import is_ready
from facerefl.errors import InputError
from facerefl.export.gltf import parse_glb
from facerefl.export.images import read_png
from facerefl.export.light import load_light_json
from facerefl.export.outputs import (
    ExportOptions,
    FitOutputs,
    environment_file_name,
    relit_camera,
    write_all,
)
from facerefl.export.relight import FaceAppearance, render_view
from facerefl.render.maps import ReflectanceMaps
from facerefl.render.raster import Camera, Mesh

from .conftest import constant_light


def _fit_outputs(mesh: Mesh, camera: Camera, face: FaceAppearance) -> FitOutputs:
    light = constant_light(0.8)
    light[:, 2] = 0.3
    view = render_view(mesh, camera, face, light)
    g = torch.Generator().manual_seed(7)
    photo = (torch.rand(3, camera.height, camera.width, generator=g) * 0.2 + 0.4)
    return FitOutputs(
        photo=photo, face=face, light=light, mesh=mesh, camera=camera, rendering=view.rgb, mask=view.mask,
        loss_history=(0.5, 0.2, 0.1, 0.08), metrics={"psnr": 25.0, "ssim": float("nan")},
        timings={"fit_s": 1.5},
    )


def _environments():
    warm = constant_light(1.0)
    warm[0, 0] *= 1.5
    side = constant_light(0.5)
    side[:, 3] = 0.8
    return {"Warm Studio": warm, "side-light": side}


def _check_output_folder(out_dir, written):
    names = sorted(p.name for p in written)
    assert names == sorted(p.name for p in out_dir.iterdir())  # nothing else, no temp files
    assert len(names) == len(set(names))
    expected = {
        "photo.png", "albedo.png", "albedo_linear16.png", "albedo.exr", "specular.png",
        "specular_linear16.png", "specular.exr", "normal.png", "normal16.png", "normal.exr",
        "light.json", "light_probe.png", "reconstruction.png", "composite.png", "side_by_side.png",
        "relit_warm_studio.png", "relit_side-light.png", "novel_view_yawp30.png",
        "face.glb", "face.obj", "face.mtl", "loss.png", "metrics.json", "report.html",
    }
    assert set(names) == expected
    assert written[-1].name == "report.html"
    html = (out_dir / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"https?:", html, re.IGNORECASE)
    srcs = re.findall(r'src="([^"]*)"', html)
    assert len(srcs) == 11 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "relit_warm_studio" in html and ">25<" in html


def test_write_all_on_sphere(tmp_path, scene):
    mesh, camera, face = scene
    out = _fit_outputs(mesh, camera, face)
    written = write_all(out, tmp_path, _environments())
    _check_output_folder(tmp_path, written)
    assert torch.equal(load_light_json(tmp_path / "light.json"), out.light)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["metrics"] == {"psnr": 25.0, "ssim": None}
    recon = read_png(tmp_path / "reconstruction.png")
    assert recon.shape == (4, 64, 64)
    assert np.array_equal(recon[3] > 127, out.mask[0].numpy() > 0.5)  # alpha = face mask
    relit = read_png(tmp_path / "relit_side-light.png")
    assert relit.shape == (4, 512, 512) and relit[0][relit[3] > 0].std() > 1  # framed on the face; shaded, not flat
    sbs = read_png(tmp_path / "side_by_side.png")
    assert sbs.shape == (3, 64, 3 * 64 + 8)
    # glb in metres: the 10 cm radius sphere spans 0.2 m
    geom = next(iter(trimesh.load(tmp_path / "face.glb").geometry.values()))
    assert np.allclose(geom.extents, 0.2, atol=2e-3)
    assert np.allclose(geom.bounds.mean(axis=0), 0.0, atol=1e-6)
    doc, _ = parse_glb((tmp_path / "face.glb").read_bytes())
    assert doc["nodes"][0]["extras"]["camera_frame_centre_m"] == pytest.approx([0.0, 0.0, -0.6], abs=1e-5)


def test_write_all_without_extras(tmp_path, scene):
    mesh, camera, face = scene
    out = _fit_outputs(mesh, camera, face)
    texture = torch.cat([torch.rand(3, 16, 16), (torch.rand(1, 16, 16) > 0.5).float()])
    face_ao = FaceAppearance(face.maps, ao=torch.rand(1, 8, 8))
    out = FitOutputs(out.photo, face_ao, out.light, out.mesh, out.camera, texture=texture)  # renders itself
    written = write_all(out, tmp_path, {"dim": constant_light(0.3)},
                        ExportOptions(novel_yaw_degrees=0.0, exr=False, relit_face_size=0, relit_max_size=32))
    names = {p.name for p in written}
    assert "texture.png" in names and "ao.png" in names
    assert (read_png(tmp_path / "reconstruction.png")[3] > 0).mean() > 0.3  # rendered here
    doc, _ = parse_glb((tmp_path / "face.glb").read_bytes())
    assert "occlusionTexture" in doc["materials"][0]
    assert np.array_equal(read_png(tmp_path / "texture.png")[3] > 0, texture[3].numpy() > 0.5)
    assert "loss.png" not in names and "albedo.exr" not in names
    assert not any(n.startswith("novel_") for n in names)
    assert read_png(tmp_path / "relit_dim.png").shape == (4, 32, 32)  # relit_max_size
    assert (tmp_path / "report.html").exists()


def test_relit_renders_are_framed_on_the_face(tmp_path, scene):
    """With relit_face_size the face fills the relit image whatever the photo's framing:
    the mesh's projected box plus the margin spans the image."""
    mesh, camera, face = scene
    out = _fit_outputs(mesh, camera, face)
    write_all(out, tmp_path, {"dim": constant_light(0.3)},
              ExportOptions(novel_yaw_degrees=20.0, exr=False, relit_face_size=48))
    for name in ("relit_dim.png", "novel_view_yawp20.png"):
        alpha = read_png(tmp_path / name)[3] > 0
        assert alpha.shape == (48, 48)
        rows, cols = np.nonzero(alpha.any(1))[0], np.nonzero(alpha.any(0))[0]
        # the face spans the image up to the margin (0.15 of the box on each side)
        assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 >= 0.7 * 48
    whole = read_png(tmp_path / "composite.png")
    assert whole.shape[1:] == (camera.height, camera.width)


def test_fit_outputs_and_names_validate(scene):
    mesh, camera, face = scene
    out = _fit_outputs(mesh, camera, face)
    with pytest.raises(ValueError, match="photo"):
        FitOutputs(out.photo[:, :10], face, out.light, mesh, camera)
    with pytest.raises(ValueError, match="mask"):
        FitOutputs(out.photo, face, out.light, mesh, camera, rendering=out.rendering, mask=out.mask[:, :5])
    with pytest.raises(ValueError, match="together"):
        FitOutputs(out.photo, face, out.light, mesh, camera, rendering=out.rendering)
    with pytest.raises(ValueError, match="light"):
        FitOutputs(out.photo, face, torch.zeros(27), mesh, camera)
    with pytest.raises(ValueError, match="texture"):
        FitOutputs(out.photo, face, out.light, mesh, camera, texture=torch.zeros(3, 8, 8))
    assert environment_file_name("Studio #2 (HDR)") == "relit_studio_2_hdr.png"
    small = relit_camera(Camera(800.0, 800.0, 320.0, 240.0, 640, 480), 320)
    assert (small.width, small.height, small.fx, small.cx) == (320, 240, 400.0, 160.0)
    assert relit_camera(camera, 0) is camera and relit_camera(camera, 64) is camera
    with pytest.raises(ValueError, match="usable"):
        environment_file_name("***")


def test_write_all_rejects_colliding_environment_names(tmp_path, scene):
    mesh, camera, face = scene
    out = _fit_outputs(mesh, camera, face)
    with pytest.raises(ValueError, match="same file"):
        write_all(out, tmp_path, {"a b": constant_light(), "A_B": constant_light()})
    with pytest.raises(ValueError, match="'short'.*27 numbers"):
        write_all(out, tmp_path, {"short": torch.zeros(3, 4)})
    with pytest.raises(InputError, match="prepare_output_dir"):
        write_all(out, tmp_path / "missing")
    assert list(tmp_path.iterdir()) == []  # bad arguments are caught before any write


@pytest.mark.skipif(not is_ready("face_mesh"), reason="face template asset missing; run `make setup`")
def test_write_all_on_face_template(tmp_path):
    from facerefl.geometry.template import load_template

    t = load_template()
    # template frame (cm, +x image right, +y up, +z out of the face) placed 50 cm in front
    mesh = Mesh(t.vertices + torch.tensor([0.0, 0.0, -50.0]), t.faces, t.uvs)
    camera = Camera(fx=500.0, fy=500.0, cx=64.0, cy=64.0, width=128, height=128)
    g = torch.Generator().manual_seed(2)
    n = torch.randn(3, 64, 64, generator=g) * 0.1
    n[2] = 1.0
    maps = ReflectanceMaps(torch.rand(3, 64, 64, generator=g) * 0.5 + 0.2,
                           torch.rand(1, 64, 64, generator=g) * 0.5, n / n.norm(dim=0, keepdim=True))
    out = _fit_outputs(mesh, camera, FaceAppearance(maps))
    assert float(out.mask.mean()) > 0.2  # the face covers the image
    written = write_all(out, tmp_path, _environments())
    _check_output_folder(tmp_path, written)
    scene = trimesh.load(tmp_path / "face.glb")
    geom = next(iter(scene.geometry.values()))
    assert geom.vertices.shape == (468, 3) and geom.faces.shape == (898, 3)
    assert 0.1 < float(geom.extents[1]) < 0.3  # a face is 10-30 cm tall, in metres
    assert geom.visual.material.baseColorTexture.size == (64, 64)
    obj = trimesh.load(tmp_path / "face.obj", process=False)
    assert obj.vertices.shape == (468, 3) and obj.visual.material.image.size == (64, 64)


@pytest.mark.gpu
def test_write_all_takes_cuda_tensors(tmp_path, scene):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    mesh, camera, face = scene
    cpu = _fit_outputs(mesh, camera, face)
    dev = "cuda"
    maps = face.maps
    gpu_face = FaceAppearance(ReflectanceMaps(maps.albedo.to(dev), maps.specular.to(dev), maps.normal.to(dev)),
                              roughness=face.roughness)
    gpu = FitOutputs(cpu.photo.to(dev), gpu_face, cpu.light.to(dev), mesh.to(dev), camera,
                     cpu.rendering.to(dev), cpu.mask.to(dev), cpu.loss_history, cpu.metrics, cpu.timings)
    (tmp_path / "cpu").mkdir()
    (tmp_path / "gpu").mkdir()
    write_all(cpu, tmp_path / "cpu", _environments())
    written = write_all(gpu, tmp_path / "gpu", _environments())
    assert {p.name for p in written} == {p.name for p in (tmp_path / "cpu").iterdir()}
    for name in ("composite.png", "relit_side-light.png", "novel_view_yawp30.png", "albedo_linear16.png"):
        a, b = read_png(tmp_path / "cpu" / name), read_png(tmp_path / "gpu" / name)
        tol = 2 if a.dtype == np.uint8 else 300
        assert np.mean(np.abs(a.astype(int) - b.astype(int)) > tol) < 0.01, name
