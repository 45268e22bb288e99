"""Image encoders: CHW tensors to 8-bit / 16-bit PNG and float EXR, written atomically.

Tensors come in the project layout ``[C, H, W]`` (C = 1, 3 or 4), row 0 at the top. This
module is the boundary where they become numpy ``[H, W, C]`` arrays for the encoders.
Whether values are linear or sRGB-encoded is the caller's choice, stated by
``srgb_encode``: with ``srgb_encode=True`` linear values are passed through the sRGB
transfer function before quantization; otherwise they are stored as they are.

Encodings used for the reflectance maps (see :mod:`facerefl.export.maps`):

* 8-bit PNG: ``round(clip(x, 0, 1) * 255)``.
* 16-bit PNG: ``round(clip(x, 0, 1) * 65535)``.
* EXR: float32, values unclipped.

Linear PNGs (``color="linear"``) carry chunks that say so, because a PNG without them is
read as sRGB by every viewer: ``gAMA`` 1.0 (honoured by libpng-based readers, browsers,
GIMP, ImageMagick, Pillow's ``info["gamma"]``) and, for colour images, ``cHRM`` with the
sRGB/BT.709 primaries and ``cICP`` (BT.709 primaries, linear transfer, full range; PNG
third edition, which newer readers prefer over ``gAMA``). No ICC profile: ``gAMA`` +
``cICP`` describe the encoding completely and are what both old and new readers look at.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import OpenEXR
import torch
from PIL import Image

from facerefl.fsutil import atomic_write, atomic_write_bytes
from facerefl.render.color import linear_to_srgb


def to_hwc(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """``[C, H, W]`` tensor (any device/dtype) to a float32 numpy ``[H, W, C]`` array.

    Raises:
        ValueError: ``image`` is not 3-D with 1, 3 or 4 channels.
    """
    if isinstance(image, torch.Tensor):
        image = image.detach().to("cpu", torch.float32).numpy()
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[0] not in (1, 3, 4):
        raise ValueError(f"expected an image of shape [C, H, W] with C in (1, 3, 4), got {tuple(arr.shape)}")
    return np.ascontiguousarray(arr.transpose(1, 2, 0))


def quantize(hwc: np.ndarray, bits: int) -> np.ndarray:
    """Clip float values to [0, 1] and round to ``uint8`` (bits=8) or ``uint16`` (bits=16)."""
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    top = 255.0 if bits == 8 else 65535.0
    dtype = np.uint8 if bits == 8 else np.uint16
    q = np.rint(np.clip(np.nan_to_num(hwc, nan=0.0), 0.0, 1.0) * top)
    return q.astype(dtype)


#: zlib level of the 8-bit PNGs: level 1 encodes a 512² render in about half the time of
#: Pillow's default 6, for files a few per cent larger (see docs/speed.md).
PNG_COMPRESS_LEVEL = 1


def encode_png(hwc: np.ndarray) -> bytes:
    """PNG bytes of a ``uint8`` or ``uint16`` ``[H, W, C]`` array (C = 1 gray, 3 RGB, 4 RGBA)."""
    if hwc.dtype == np.uint8:
        mode = {1: "L", 3: "RGB", 4: "RGBA"}[hwc.shape[2]]
        buf = io.BytesIO()
        Image.fromarray(hwc[..., 0] if mode == "L" else hwc, mode=mode).save(
            buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        return buf.getvalue()
    if hwc.dtype == np.uint16:
        # OpenCV stores channels as BGR(A); reorder so the file holds RGB(A).
        conv = {1: None, 3: cv2.COLOR_RGB2BGR, 4: cv2.COLOR_RGBA2BGRA}[hwc.shape[2]]
        arr = hwc[..., 0] if conv is None else cv2.cvtColor(hwc, conv)
        ok, buf = cv2.imencode(".png", arr)
        if not ok:  # pragma: no cover - OpenCV fails only on impossible shapes
            raise RuntimeError("OpenCV could not encode a 16-bit PNG")
        return buf.tobytes()
    raise ValueError(f"PNG arrays must be uint8 or uint16, got {hwc.dtype}")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


#: cHRM of the sRGB / BT.709 primaries and D65 white (x, y times 100000)
_CHRM_BT709 = struct.pack(">8I", 31270, 32900, 64000, 33000, 30000, 60000, 15000, 6000)


def tag_png_linear(png: bytes) -> bytes:
    """``png`` with colour chunks marking its samples as linear (see the module docstring)."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not a PNG stream")
    ihdr_end = 8 + 12 + struct.unpack(">I", png[8:12])[0]
    colour_type = png[8 + 8 + 9]  # IHDR: width, height, bit depth, colour type
    chunks = _chunk(b"gAMA", struct.pack(">I", 100000))
    if colour_type in (2, 6):  # RGB, RGBA
        chunks += _chunk(b"cHRM", _CHRM_BT709) + _chunk(b"cICP", bytes([1, 8, 0, 1]))
    return png[:ihdr_end] + chunks + png[ihdr_end:]


def png_chunks(png: bytes) -> dict[bytes, bytes]:
    """``{chunk type: data}`` of a PNG stream (the first chunk of each type)."""
    out: dict[bytes, bytes] = {}
    pos = 8
    while pos + 8 <= len(png):
        n = struct.unpack(">I", png[pos:pos + 4])[0]
        out.setdefault(png[pos + 4:pos + 8], png[pos + 8:pos + 8 + n])
        pos += 12 + n
    return out


def image_png_bytes(image: torch.Tensor | np.ndarray, bits: int = 8, srgb_encode: bool = False,
                    linear: bool = False) -> bytes:
    """PNG bytes of a ``[C, H, W]`` image with values in [0, 1] (clipped).

    Args:
        image: ``[C, H, W]``, C in (1, 3, 4); linear when ``srgb_encode`` else stored as is.
        bits: 8 or 16 bits per channel.
        srgb_encode: apply the sRGB transfer function to the colour channels (not alpha).
        linear: tag the file as holding linear values (:func:`tag_png_linear`).
    """
    if linear and srgb_encode:
        raise ValueError("a PNG is either sRGB-encoded or tagged linear, not both")
    hwc = to_hwc(image)
    if srgb_encode:
        hwc = hwc.copy()
        ncol = 3 if hwc.shape[2] >= 3 else 1
        hwc[..., :ncol] = linear_to_srgb(torch.from_numpy(hwc[..., :ncol])).numpy()
    png = encode_png(quantize(hwc, bits))
    return tag_png_linear(png) if linear else png


def save_png(
    path: str | os.PathLike, image: torch.Tensor | np.ndarray, bits: int = 8, srgb_encode: bool = False,
    linear: bool = False,
) -> Path:
    """Write ``image`` (``[C, H, W]`` in [0, 1]) as a PNG atomically; see :func:`image_png_bytes`."""
    return atomic_write_bytes(path, image_png_bytes(image, bits=bits, srgb_encode=srgb_encode, linear=linear))


def save_exr(path: str | os.PathLike, image: torch.Tensor | np.ndarray) -> Path:
    """Write ``image`` (``[C, H, W]``, C = 1 or 3, float, unclipped) as a ZIP-compressed EXR.

    One channel is stored as ``Y``, three as ``R``, ``G``, ``B`` (float32).
    """
    hwc = to_hwc(image)
    if hwc.shape[2] == 1:
        channels = {"Y": np.ascontiguousarray(hwc[..., 0])}
    elif hwc.shape[2] == 3:
        channels = {"RGB": hwc}
    else:
        raise ValueError(f"EXR export takes 1 or 3 channels, got {hwc.shape[2]}")
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}

    def _write(tmp: Path) -> None:
        OpenEXR.File(header, channels).write(str(tmp))

    return atomic_write(path, _write)


def read_exr(path: str | os.PathLike) -> np.ndarray:
    """Read an EXR written by :func:`save_exr` back as float32 ``[C, H, W]``."""
    with OpenEXR.File(str(path)) as f:
        ch = f.channels()
        if "RGB" in ch:
            hwc = np.asarray(ch["RGB"].pixels, dtype=np.float32)
        elif "Y" in ch:
            hwc = np.asarray(ch["Y"].pixels, dtype=np.float32)[..., None]
        else:
            raise ValueError(f"{path}: expected RGB or Y channels, found {sorted(ch)}")
    return np.ascontiguousarray(hwc.transpose(2, 0, 1))


def read_png(path: str | os.PathLike) -> np.ndarray:
    """Read an 8- or 16-bit PNG as its integer ``[C, H, W]`` array (RGB(A) channel order)."""
    arr = cv2.imdecode(np.fromfile(str(path), dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ValueError(f"{path} is not a readable PNG")
    if arr.ndim == 2:
        arr = arr[..., None]
    elif arr.shape[2] == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    elif arr.shape[2] == 4:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA)
    return np.ascontiguousarray(arr.transpose(2, 0, 1))
