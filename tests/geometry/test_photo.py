"""load_photo on the formats, modes and failures people run into."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from facerefl.errors import InputError
from facerefl.geometry.photo import load_photo, photo_from_array, to_uint8_hwc


def _gradient(h=40, w=60):
    y, x = np.mgrid[:h, :w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), np.full_like(x, 128)], -1).astype(np.uint8)


@pytest.mark.parametrize("ext", ["png", "jpg", "webp", "tif", "bmp"])
def test_formats_roundtrip(tmp_path, ext):
    rgb = _gradient()
    path = tmp_path / f"img.{ext}"
    Image.fromarray(rgb).save(path, **({"quality": 95} if ext in ("jpg", "webp") else {}))
    out = load_photo(path)
    assert out.shape == (3, 40, 60) and out.dtype == torch.float32
    tol = 0.06 if ext in ("jpg", "webp") else 1e-6
    assert float((out - torch.from_numpy(rgb).permute(2, 0, 1) / 255.0).abs().mean()) < tol / 3
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_modes_gray_palette_rgba_cmyk(tmp_path):
    rgb = _gradient()
    ref = torch.from_numpy(rgb).permute(2, 0, 1) / 255.0
    Image.fromarray(rgb).convert("L").save(tmp_path / "g.png")
    g = load_photo(tmp_path / "g.png")
    assert torch.equal(g[0], g[1]) and torch.equal(g[1], g[2])
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "p.png")
    assert float((load_photo(tmp_path / "p.png") - ref).abs().mean()) < 0.03
    rgba = np.concatenate([rgb, np.zeros_like(rgb[..., :1])], -1)
    rgba[:, :30, 3] = 255  # left half opaque, right half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    a = load_photo(tmp_path / "a.png")
    assert torch.allclose(a[:, :, :30], ref[:, :, :30], atol=1e-6)
    assert torch.allclose(a[:, :, 30:], torch.ones_like(a[:, :, 30:]))  # over white
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    assert float((load_photo(tmp_path / "c.jpg") - ref).abs().mean()) < 0.05


def test_16_bit(tmp_path):
    g16 = (np.linspace(0, 65535, 50 * 30).reshape(30, 50)).astype(np.uint16)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    out = load_photo(tmp_path / "g16.png")
    assert torch.allclose(out[0], torch.from_numpy(g16 / 65535.0).float(), atol=1e-6)
    import cv2

    rgb16 = np.zeros((30, 50, 3), np.uint16)
    rgb16[..., 0] = 65535  # red (cv2 writes BGR)
    rgb16[..., 2] = 32768
    cv2.imwrite(str(tmp_path / "c16.png"), rgb16[..., ::-1])
    cv2.imwrite(str(tmp_path / "c16.tif"), rgb16[..., ::-1])
    for name in ("c16.png", "c16.tif"):
        c = load_photo(tmp_path / name)
        assert torch.allclose(c[:, 5, 5], torch.tensor([1.0, 0.0, 0.5]), atol=1 / 255)


def test_exif_orientation(tmp_path):
    rgb = _gradient(40, 60)
    img = Image.fromarray(rgb)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display needs 90° clockwise
    img.save(tmp_path / "o.jpg", exif=exif, quality=95)
    out = load_photo(tmp_path / "o.jpg")
    assert out.shape == (3, 60, 40)
    upright = np.rot90(rgb, k=-1)  # 90° clockwise
    ref = torch.from_numpy(upright.copy()).permute(2, 0, 1) / 255.0
    assert float((out - ref).abs().mean()) < 0.02


def test_large_image_is_downscaled(tmp_path):
    Image.fromarray(_gradient(1500, 3000)).save(tmp_path / "big.png")
    out = load_photo(tmp_path / "big.png", max_side=1000)
    assert out.shape == (3, 500, 1000)
    Image.fromarray(_gradient(1500, 3000)).save(tmp_path / "big.jpg")
    assert load_photo(tmp_path / "big.jpg", max_side=512).shape == (3, 256, 512)


def test_decompression_bomb_guard(tmp_path):
    Image.new("L", (4000, 3000)).save(tmp_path / "bomb.png")  # compresses to a few kB
    with pytest.raises(InputError, match=r"4000×3000 .*decompression-bomb"):
        load_photo(tmp_path / "bomb.png", max_pixels=10_000_000)


def test_bad_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_photo(tmp_path / "nope.jpg")
    with pytest.raises(InputError, match="not a file"):
        load_photo(tmp_path)
    (tmp_path / "text.jpg").write_text("not an image")
    with pytest.raises(InputError, match="cannot read .* as an image"):
        load_photo(tmp_path / "text.jpg")
    Image.fromarray(_gradient(200, 200)).save(tmp_path / "cut.jpg")
    data = (tmp_path / "cut.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(InputError, match="damaged or truncated"):
        load_photo(tmp_path / "cut.jpg")


def test_photo_from_array():
    rgb = _gradient()
    t = photo_from_array(rgb)
    assert t.shape == (3, 40, 60)
    assert np.array_equal(to_uint8_hwc(t), rgb)
    assert photo_from_array(rgb[..., 0]).shape == (3, 40, 60)
    with pytest.raises(InputError, match="in \\[0, 1\\]"):
        photo_from_array(np.full((3, 4, 4), 2.0, np.float32))
    with pytest.raises(InputError, match="shape"):
        photo_from_array(np.zeros((5, 4, 2)))
