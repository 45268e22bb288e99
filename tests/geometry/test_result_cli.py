"""FaceGeometry (build, save/load) and the command line, on real portraits and bad input."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import fields

import cv2
import numpy as np
import pytest
import skimage.data
import skimage.io
import torch
from PIL import Image

from facerefl.errors import InputError
from facerefl.geometry.__main__ import OUTPUTS, main
from facerefl.geometry.result import FaceGeometry, GeometryConfig, build_face_geometry
from facerefl.render.raster import GBuffer
from tests.geometry.test_unwrap_bake import check_face_occlusion

CFG = GeometryConfig(resolution=256)


@pytest.fixture(scope="module")
def built(astronaut, grace):
    return {"astronaut": build_face_geometry(astronaut, CFG), "grace": build_face_geometry(grace, CFG)}


@pytest.mark.parametrize("name", ["astronaut", "grace"])
def test_coverage_and_occlusion_ranges(built, name, template):
    fg = built[name]
    h, w = fg.photo.shape[1:]
    assert fg.texture.shape == (1, 4, 256, 256) and fg.visibility_sh.shape == (1, 9, 256, 256)
    assert fg.bent_normal.shape == (1, 3, 256, 256) and fg.ao.shape == (1, 1, 256, 256)
    assert fg.gbuffer.mask.shape == (1, h, w, 1) and fg.face_mask.shape == (1, h, w, 1)
    # Frontal portraits: about half the texture is visible skin (measured 0.53–0.54).
    assert 0.45 < float(fg.mask.mean()) < 0.6
    # The loss region is the skin part of the rendered face.
    assert bool((fg.face_mask <= fg.gbuffer.mask).all())
    assert 0.75 < float(fg.face_mask.sum() / fg.gbuffer.mask.sum()) < 0.97
    ao = fg.vertex_bake.ao
    assert float(ao.max()) > 0.99 and float(ao.min()) < 0.5
    assert 0.85 < float(ao.mean()) < 0.99
    # Darker nostrils, eye corners and under the nose than cheeks and forehead (the
    # first 468 vertices of the subdivided mesh are the template's).
    check_face_occlusion(ao[:468], template)
    # The photo's face pixels and the texture agree in colour (same skin, same sRGB).
    skin_px = fg.photo.permute(1, 2, 0)[fg.face_mask[0, ..., 0] > 0].mean(0)
    skin_tex = fg.texture[0, :3][:, fg.texture[0, 3] > 0].mean(1)
    assert float((skin_px - skin_tex).abs().max()) < 0.05
    assert fg.timings.total > 0 and fg.timings.total >= fg.timings.bake


def test_save_load_roundtrip(built, tmp_path):
    fg = built["astronaut"]
    path = fg.save(tmp_path / "fg.safetensors")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left
    back = FaceGeometry.load(path)
    assert back.camera == fg.camera and back.config == fg.config and back.timings == fg.timings
    assert back.crop == fg.crop
    for name in ("photo", "landmarks", "face_mask", "texture", "visibility_sh", "bent_normal", "ao"):
        assert torch.equal(getattr(back, name), getattr(fg, name)), name
    for f in fields(GBuffer):
        assert torch.equal(getattr(back.gbuffer, f.name), getattr(fg.gbuffer, f.name)), f.name
    assert torch.equal(back.mesh.faces, fg.mesh.faces) and back.mesh.faces.dtype == torch.int64
    assert torch.equal(back.vertex_bake.ao, fg.vertex_bake.ao)
    assert back.to(dtype=torch.float64).texture.dtype == torch.float64
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(InputError, match="not a readable safetensors"):
        FaceGeometry.load(tmp_path / "junk.safetensors")
    with pytest.raises(InputError, match="not found"):
        FaceGeometry.load(tmp_path / "nope.safetensors")


def test_large_photo_is_cropped_to_the_face():
    big = cv2.resize(skimage.data.astronaut(), (1600, 1600), interpolation=cv2.INTER_CUBIC)
    fg = build_face_geometry(big, GeometryConfig(resolution=64, subdivisions=0, crop_max_side=300))
    h, w = fg.photo.shape[1:]
    assert max(h, w) == 300 and fg.gbuffer.mask.shape == (1, h, w, 1)
    c = fg.crop
    assert (c.photo_width, c.photo_height) == (1600, 1600) and c.scale_x < 1.0
    assert 0.1 < float(fg.gbuffer.mask.mean()) < 0.6  # the face fills much of the crop (0.15)
    whole = build_face_geometry(skimage.data.astronaut(),
                                GeometryConfig(resolution=64, subdivisions=0, crop_margin=None))
    assert whole.photo.shape == (3, 512, 512) and whole.crop.scale_x == 1.0


def test_config_validation():
    with pytest.raises(InputError, match="resolution"):
        GeometryConfig(resolution=8)
    with pytest.raises(InputError, match="subdivisions"):
        GeometryConfig(subdivisions=9)
    with pytest.raises(InputError, match="crop_margin"):
        GeometryConfig(crop_margin=-1.0)


def _run_cli(args, capsys):
    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_cli_writes_outputs(tmp_path, capsys):
    img = tmp_path / "astronaut.jpg"
    Image.fromarray(skimage.data.astronaut()).save(img, quality=95)
    out = tmp_path / "out"
    code, stdout, err = _run_cli([img, "--out", out, "--resolution", "128"], capsys)
    assert code == 0, err
    assert all((out / n).exists() for n in OUTPUTS)
    tex = cv2.imread(str(out / "texture.png"))
    mask = cv2.imread(str(out / "mask.png"), cv2.IMREAD_GRAYSCALE)
    assert tex.shape == (128, 128, 3) and 0.45 < (mask > 127).mean() < 0.6
    assert max(cv2.imread(str(out / "overlay.png")).shape[:2]) == 1024
    assert FaceGeometry.load(out / "face_geometry.safetensors").texture.shape == (1, 4, 128, 128)
    # A second run into the same folder needs --overwrite.
    code, _, err = _run_cli([img, "--out", out], capsys)
    assert code == 2 and err.startswith("error: ") and "--overwrite" in err


def _bad_inputs(tmp_path):
    cases = {}
    cases["missing"] = (tmp_path / "missing.jpg", "not found")
    (tmp_path / "text.png").write_text("hello")
    cases["unreadable"] = (tmp_path / "text.png", "cannot read")
    skimage.io.imsave(tmp_path / "coffee.png", skimage.data.coffee())
    cases["no face"] = (tmp_path / "coffee.png", "no face found")
    skimage.io.imsave(tmp_path / "chelsea.jpg", skimage.data.chelsea())
    cases["cat"] = (tmp_path / "chelsea.jpg", "no face found")
    small = cv2.resize(skimage.data.astronaut(), (192, 192), interpolation=cv2.INTER_AREA)
    Image.fromarray(small).save(tmp_path / "small.webp")
    cases["small face"] = (tmp_path / "small.webp", r"only \d+×\d+ px")
    Image.fromarray(skimage.data.astronaut()).save(tmp_path / "cut.jpg")
    data = (tmp_path / "cut.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 4])
    cases["truncated"] = (tmp_path / "cut.jpg", "damaged or truncated")
    Image.new("1", (16000, 13000)).save(tmp_path / "bomb.png")
    cases["bomb"] = (tmp_path / "bomb.png", "decompression-bomb")
    return cases


def test_cli_bad_inputs_one_line_exit_2(tmp_path, capsys):
    for name, (path, pattern) in _bad_inputs(tmp_path).items():
        code, _, err = _run_cli([path, "--out", tmp_path / f"out_{name.replace(' ', '_')}"], capsys)
        assert code == 2, (name, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, err)
        assert re.search(pattern, lines[0]), (name, lines[0])
    code, _, err = _run_cli([tmp_path / "x.jpg", "--out", tmp_path / "o", "--resolution", "4"], capsys)
    assert code == 2 and "resolution" in err
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "x.jpg")])  # --out missing
    assert e.value.code == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_cli_several_faces_warns(tmp_path, capsys):
    a = skimage.data.astronaut()[0:300, 100:350]
    small = np.pad(cv2.resize(a, (175, 210)), ((45, 45), (0, 0), (0, 0)))
    Image.fromarray(np.concatenate([small, a], 1)).save(tmp_path / "two.png")
    code, _, err = _run_cli([tmp_path / "two.png", "--out", tmp_path / "o", "--resolution", "64",
                             "--subdivisions", "0"], capsys)
    assert code == 0 and err.startswith("warning: 2 faces found")


def test_cli_subprocess_error_is_one_clean_line(tmp_path):
    skimage.io.imsave(tmp_path / "coffee.png", skimage.data.coffee())
    proc = subprocess.run([sys.executable, "-m", "facerefl.geometry", str(tmp_path / "coffee.png"),
                           "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("error: no face found") and "Traceback" not in proc.stderr
