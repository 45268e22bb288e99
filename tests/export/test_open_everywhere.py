"""Outputs other programs open as meant: linear PNGs tagged, the OBJ's normal map in the
forms Blender and three.js read, a light probe that is not clipped white, a metrics table
without look-alike rows, files that honour the umask, and a glb the Khronos validator
accepts."""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facerefl.export.gltf import PbrTextures, write_glb
from facerefl.export.images import image_png_bytes, png_chunks, read_png
from facerefl.export.light import light_probe_image
from facerefl.export.maps import save_reflectance_maps
from facerefl.export.obj import mtl_text, MtlTextures
from facerefl.export.outputs import metric_rows
from facerefl.export.surface import to_asset_frame
from facerefl.fsutil import atomic_write_bytes
from facerefl.render.maps import ReflectanceMaps

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR_DIR = ROOT / ".venv" / "node" / "node_modules" / "gltf-validator"


def validate_glb(path: Path) -> dict:
    """The Khronos glTF validator's report on ``path`` (skips the test without node)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the Khronos glTF validator (npm gltf-validator) cannot run")
    assert VALIDATOR_DIR.is_dir(), "the glTF validator is not installed; run `make setup`"
    script = Path(__file__).with_name("gltf_validator") / "validate.mjs"
    env = {**os.environ, "GLTF_VALIDATOR_DIR": str(VALIDATOR_DIR.parent)}
    r = subprocess.run([node, str(script), str(path)], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


def assert_valid_glb(path: Path) -> None:
    report = validate_glb(path)
    issues = report["issues"]
    problems = [m for m in issues["messages"] if m["severity"] <= 1]  # 0 error, 1 warning
    assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, problems


def test_glb_passes_the_khronos_validator(tmp_path, sphere, maps_tensors):
    albedo, specular, normal = maps_tensors
    mesh = to_asset_frame(sphere, metres_per_unit=0.01)
    ao = torch.rand(1, *albedo.shape[1:])
    path = write_glb(tmp_path / "face.glb", mesh, PbrTextures(albedo, specular, normal, roughness=0.4, occlusion=ao),
                     extras={"note": "x"})
    assert_valid_glb(path)


def test_linear_pngs_carry_linear_colour_chunks(tmp_path, maps_tensors):
    albedo, specular, normal = maps_tensors
    save_reflectance_maps(tmp_path, ReflectanceMaps(albedo, specular, normal), exr=False)
    for name, colour in (("albedo_linear16.png", True), ("specular_linear16.png", False), ("specular.png", False)):
        data = (tmp_path / name).read_bytes()
        chunks = png_chunks(data)
        assert struct.unpack(">I", chunks[b"gAMA"])[0] == 100000, name  # gamma 1.0
        if colour:
            assert chunks[b"cICP"] == bytes([1, 8, 0, 1])  # BT.709 primaries, linear, full range
            assert len(chunks[b"cHRM"]) == 32
        assert list(chunks)[:2] == [b"IHDR", b"gAMA"]  # before the image data
        with Image.open(io.BytesIO(data)) as im:
            im.load()  # CRCs checked by the decoder
            assert im.info["gamma"] == pytest.approx(1.0)
    # the sRGB files stay untagged (readers assume sRGB); the tags leave the pixels as they were
    assert b"gAMA" not in png_chunks((tmp_path / "albedo.png").read_bytes())
    untagged = tmp_path / "untagged.png"
    untagged.write_bytes(image_png_bytes(albedo, bits=16))
    np.testing.assert_array_equal(read_png(tmp_path / "albedo_linear16.png"), read_png(untagged))


def test_linear_and_srgb_tags_exclude_each_other():
    with pytest.raises(ValueError):
        image_png_bytes(torch.zeros(3, 2, 2), srgb_encode=True, linear=True)


def test_mtl_names_the_normal_map_as_blender_and_threejs_read_it():
    lines = mtl_text(MtlTextures()).splitlines()
    assert "norm normal.png" in lines  # three.js MTLLoader: normalMap
    assert "map_Bump -bm 1 normal.png" in lines  # Blender: Normal Map node, strength 1
    assert not any(ln.startswith("map_Bump normal.png") for ln in lines)


def test_light_probe_is_tone_mapped_not_clipped():
    light = torch.zeros(3, 9)
    light[:, 0] = 8.0  # a bright ambient term
    light[:, 2] = 6.0  # and a strong light from the front
    probe = light_probe_image(light, size=64)
    assert float(probe.max()) <= 1.0 and float(probe.min()) >= 0.0
    disc = probe[:, :, 64:]
    clipped = float((disc >= 0.999).all(0).float().mean())
    assert clipped < 0.02
    # the front of the mirror ball (+z) is still brighter than its rim
    assert float(disc[0, 32, 32]) > float(disc[0, 32, 2])


def test_metrics_table_labels_phases_and_has_one_psnr_per_phase():
    m = {"psnr_initial": 20.0, "psnr_initial_pixels": 20.1, "psnr_latent": 24.0, "psnr_final": 26.0,
         "psnr_final_pixels": 26.1, "iterations": 150.0, "refine_iterations": 200.0, "best_iteration": 350.0}
    rows = dict(metric_rows(m))
    assert not any("pixels" in k for k in rows)
    assert rows["latent iterations"] == 150.0
    assert rows["state kept"] == "refinement step 200 of 200"
    assert dict(metric_rows({"iterations": 150.0, "best_iteration": 90.0}))["state kept"] == "latent step 90 of 150"
    psnr_rows = [k for k in rows if k.startswith("PSNR")]
    assert len(psnr_rows) == len(set(psnr_rows)) == 3


def test_written_files_honour_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        p = atomic_write_bytes(tmp_path / "a.bin", b"x")
    finally:
        os.umask(old)
    assert p.stat().st_mode & 0o777 == 0o640
    old = os.umask(0o002)
    try:
        p = atomic_write_bytes(tmp_path / "b.bin", b"x")
    finally:
        os.umask(old)
    assert p.stat().st_mode & 0o777 == 0o664
