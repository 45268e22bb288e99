from __future__ import annotations

import json
import math

import pytest
import torch

from facerefl.errors import InputError
from facerefl.export.light import (
    diffuse_sphere,
    light_probe_image,
    load_light_json,
    mirror_ball,
    save_light_json,
)

_Y1 = math.sqrt(3.0 / (4.0 * math.pi))


def test_light_json_round_trip_and_layout(tmp_path):
    light = torch.randn(3, 9, generator=torch.Generator().manual_seed(3))
    save_light_json(tmp_path / "light.json", light)
    doc = json.loads((tmp_path / "light.json").read_text())
    assert len(doc["coefficients"]) == 27
    # color-major: index 9 is the first green coefficient
    assert doc["coefficients"][9] == pytest.approx(float(light[1, 0]))
    assert doc["basis_order"][1] == "Y1-1" and "camera frame" in doc["frame"]
    back = load_light_json(tmp_path / "light.json")
    assert back.shape == (3, 9) and torch.equal(back, light)


def test_bad_light_files_raise_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_light_json(tmp_path / "missing.json")
    (tmp_path / "a.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_light_json(tmp_path / "a.json")
    (tmp_path / "b.json").write_text(json.dumps({"format": "facerefl.sh_light.v1", "coefficients": [1.0] * 26}))
    with pytest.raises(InputError, match="27"):
        load_light_json(tmp_path / "b.json")
    with pytest.raises(ValueError, match=r"\[3, 9\]"):
        save_light_json(tmp_path / "c.json", torch.zeros(27))


def test_diffuse_sphere_matches_lambertian_convolution():
    light = torch.zeros(3, 9)
    light[:, 2] = 1.0  # radiance a * Y10(w): brightest from +z (towards the viewer)
    img, mask = diffuse_sphere(light, size=65)
    centre = img[:, 32, 32]  # normal ~ +z
    assert centre == pytest.approx([2.0 / 3.0 * _Y1] * 3, rel=1e-3)
    assert not mask[0, 0] and float(img[:, 0, 0].abs().sum()) == 0.0


def test_mirror_ball_shows_light_direction():
    light = torch.zeros(3, 9)
    light[0, 1] = 1.0  # red radiance proportional to y: light from above
    img, mask = mirror_ball(light, size=64)
    assert float(img[0, 8, 32]) > 0.3 > float(img[0, 56, 32])  # top bright, bottom dark
    # the disc centre reflects the view direction +z, where y = 0
    assert abs(float(img[0, 31:33, 31:33].mean())) < 0.05
    probe = light_probe_image(light, size=32)
    assert probe.shape == (3, 32, 64) and float(probe[0, 0, 0]) == pytest.approx(0.18)
