import base64
import json

import numpy as np
import OpenEXR
import pytest
import torch

from facerefl.data.hdri import (
    convert_asset,
    decode_exr_js,
    direction_to_pixel,
    equirect_directions,
    equirect_solid_angles,
)
from facerefl.errors import InputError


def _write_exr_js(path, rgb):
    exr_path = path.with_suffix(".tmp.exr")
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    OpenEXR.File(header, {"RGB": rgb.astype(np.float16)}).write(str(exr_path))
    b64 = base64.b64encode(exr_path.read_bytes()).decode()
    path.write_text(f"export default 'data:application/exr;base64,{b64}'\n")
    exr_path.unlink()


def test_convert_asset_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.uniform(0, 4, size=(8, 16, 3)).astype(np.float32)
    rgb[0, 0, 0] = -0.5  # codec overshoot must be clamped
    src = tmp_path / "pkg"
    (src / "hdri").mkdir(parents=True)
    _write_exr_js(src / "hdri" / "room.exr.js", rgb)
    out = tmp_path / "out"
    out.mkdir()
    convert_asset(src, out)
    full = np.load(out / "room.npy")
    small = np.load(out / "room_256.npy")
    assert full.dtype == np.float16 and full.shape == (8, 16, 3)
    np.testing.assert_allclose(full[1:], rgb[1:], rtol=2e-3)
    assert full[0, 0, 0] == 0.0
    assert small.shape == (4, 8, 3)
    np.testing.assert_allclose(small.astype(np.float32).mean(), np.clip(rgb, 0, None).mean(), rtol=5e-3)
    assert json.loads((out / "manifest.json").read_text())["maps"][0]["name"] == "room"


def test_decode_rejects_non_data_url(tmp_path):
    p = tmp_path / "bad.exr.js"
    p.write_text("export default 'hello'")
    with pytest.raises(InputError, match="data URL"):
        decode_exr_js(p)


def test_equirect_geometry():
    h, w = 16, 32
    assert torch.isclose(equirect_solid_angles(h, w).sum(), torch.tensor(4 * torch.pi))
    d = equirect_directions(h, w)
    assert torch.allclose(d.norm(dim=-1), torch.ones(h, w), atol=1e-6)
    row, col = direction_to_pixel(d, h, w)
    assert torch.equal(row, torch.arange(h)[:, None].expand(h, w))
    assert torch.equal(col, torch.arange(w)[None].expand(h, w))
    # centre of the map looks straight ahead (-z), top row is up (+y)
    assert d[h // 2, w // 2, 2] < -0.9 and d[0, 0, 1] > 0.9
