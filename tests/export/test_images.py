from __future__ import annotations

import numpy as np
import pytest
import torch

from facerefl.export.images import read_exr, read_png, save_exr, save_png
from facerefl.export.maps import save_reflectance_maps
from facerefl.render.color import srgb_to_linear
from facerefl.render.maps import ReflectanceMaps


def test_16bit_png_holds_linear_values(tmp_path):
    img = torch.linspace(0, 1, 3 * 5 * 7).reshape(3, 5, 7)
    save_png(tmp_path / "lin16.png", img, bits=16)
    back = read_png(tmp_path / "lin16.png")
    assert back.dtype == np.uint16 and back.shape == (3, 5, 7)
    assert np.abs(back / 65535.0 - img.numpy()).max() <= 0.5 / 65535 + 1e-7
    # channel order: red stays red
    red = torch.zeros(3, 2, 2)
    red[0] = 1.0
    save_png(tmp_path / "red.png", red, bits=16)
    assert read_png(tmp_path / "red.png")[:, 0, 0].tolist() == [65535, 0, 0]


def test_8bit_srgb_png_decodes_to_linear(tmp_path):
    img = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(1))
    save_png(tmp_path / "s.png", img, bits=8, srgb_encode=True)
    back = torch.from_numpy(read_png(tmp_path / "s.png").astype(np.float32) / 255.0)
    # one 8-bit sRGB step is at most ~0.009 in linear terms (near 1)
    assert (srgb_to_linear(back) - img).abs().max() < 0.01
    # and it really is sRGB-encoded, not linear: linear 0.214 is sRGB 0.5 (~128, not 55)
    save_png(tmp_path / "g.png", torch.full((1, 1, 1), 0.214041), srgb_encode=True)
    assert abs(int(read_png(tmp_path / "g.png")[0, 0, 0]) - 128) <= 1


def test_exr_round_trip_keeps_unclipped_floats(tmp_path):
    img = torch.randn(3, 4, 6)
    save_exr(tmp_path / "x.exr", img)
    np.testing.assert_array_equal(read_exr(tmp_path / "x.exr"), img.numpy())
    grey = torch.rand(1, 4, 6) * 3
    save_exr(tmp_path / "y.exr", grey)
    np.testing.assert_array_equal(read_exr(tmp_path / "y.exr"), grey.numpy())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.exr", "y.exr"]


def test_bad_shapes_raise(tmp_path):
    with pytest.raises(ValueError, match=r"\[C, H, W\]"):
        save_png(tmp_path / "bad.png", torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="bits"):
        save_png(tmp_path / "bad.png", torch.zeros(3, 4, 4), bits=12)


def test_reflectance_maps_files_and_encodings(tmp_path, maps_tensors):
    albedo, specular, normal = maps_tensors
    files = save_reflectance_maps(tmp_path, ReflectanceMaps(albedo, specular, normal))
    assert sorted(p.name for p in files) == sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 9
    spec8 = read_png(tmp_path / "specular.png")
    assert spec8.shape == (1, 32, 48) and spec8.dtype == np.uint8
    assert np.abs(spec8 / 255.0 - specular.numpy()).max() <= 0.5 / 255 + 1e-6
    n16 = read_png(tmp_path / "normal16.png").astype(np.float64) / 65535.0 * 2 - 1
    assert np.abs(n16 - normal.numpy()).max() < 1e-4
    alb16 = read_png(tmp_path / "albedo_linear16.png") / 65535.0
    assert np.abs(alb16 - albedo.numpy()).max() < 1e-4
    np.testing.assert_allclose(read_exr(tmp_path / "normal.exr"), normal.numpy(), atol=1e-7)
