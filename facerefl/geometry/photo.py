"""Loading the photos people actually have into one sRGB tensor.

Handles JPEG, PNG, WebP, TIFF and BMP (anything Pillow opens); 1-, 8- and 16-bit
samples; grayscale, palette, RGBA/LA (composited over white), CMYK; EXIF orientation
(phone photos are stored sideways with a rotation tag); very large images (downscaled on
load, JPEGs already while decoding; a pixel-count guard refuses decompression bombs).
Every failure a user can cause raises :class:`facerefl.errors.InputError` saying what was
wrong and what to do.

Note: Pillow decodes 16-bit *colour* PNG/TIFF to 8 bits per channel; 16-bit grayscale
keeps its precision. Downscaling happens on the sRGB-encoded values.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from facerefl.errors import InputError

__all__ = ["DEFAULT_MAX_SIDE", "DEFAULT_MAX_PIXELS", "load_photo", "photo_from_array",
           "to_uint8_hwc"]

#: longest side after loading; larger photos are downscaled. The geometry stage then crops
#: the face and shrinks the crop to ``crop_max_side``; 4096 keeps enough of a large face for
#: a 1024² delit albedo (at 2048 a 4000×3000 portrait's face had 67k pixels: 512²).
DEFAULT_MAX_SIDE = 4096
#: refuse images with more pixels than this before decoding them (decompression bombs).
DEFAULT_MAX_PIXELS = 200_000_000


def _open(path: Path, max_pixels: int) -> Image.Image:
    """Open lazily (header only) with Pillow's own bomb guard disabled in favour of ours."""
    if not path.exists():
        raise InputError(f"photo not found: {path}; check the path")
    if not path.is_file():
        raise InputError(f"photo path is not a file: {path}; pass an image file")
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        img = Image.open(path)
    except UnidentifiedImageError as e:
        raise InputError(
            f"cannot read {path} as an image; use a JPEG, PNG, WebP, TIFF or BMP file"
        ) from e
    except OSError as e:
        raise InputError(f"cannot open {path}: {e}; check the file") from e
    finally:
        Image.MAX_IMAGE_PIXELS = old
    w, h = img.size
    if w * h > max_pixels:
        img.close()
        raise InputError(
            f"{path} is {w}×{h} = {w * h / 1e6:.0f} megapixels, above the limit of "
            f"{max_pixels / 1e6:.0f} (decompression-bomb guard); downscale it first"
        )
    return img


def _to_float_rgb(img: Image.Image) -> np.ndarray:
    """Any Pillow mode → ``[H, W, 3]`` float32 sRGB in [0, 1] (alpha over white)."""
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        a = np.asarray(img).astype(np.float32)
        if mode.startswith("I;16") or (mode == "I" and a.max() > 255):
            a = a / 65535.0
        elif mode == "I":
            a = a / 255.0
        a = np.clip(a, 0.0, 1.0)
        return np.repeat(a[..., None], 3, axis=2)
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    elif mode in ("PA", "La", "RGBa"):
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA"):
        rgba = np.asarray(img.convert("RGBA")).astype(np.float32) / 255.0
        alpha = rgba[..., 3:]
        return rgba[..., :3] * alpha + (1.0 - alpha)
    return np.asarray(img.convert("RGB")).astype(np.float32) / 255.0


def _decode(img: Image.Image, path: Path, max_side: int) -> Image.Image:
    """Decode (reduced while decoding where the codec can), apply EXIF orientation."""
    if img.format == "JPEG":
        img.draft("RGB", (max_side, max_side))  # DCT scaling: cheap 1/2, 1/4, 1/8 decode
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # odd EXIF tags: not the user's fault
            img.load()
            return ImageOps.exif_transpose(img)
    except (OSError, ValueError, SyntaxError) as e:
        raise InputError(f"{path} is damaged or truncated ({e}); re-export the image") from e


def _downscale(img: Image.Image, max_side: int) -> Image.Image:
    w, h = img.size
    if max(w, h) <= max_side:
        return img
    s = max_side / max(w, h)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    if img.mode not in ("RGB", "RGBA", "L", "LA", "I", "F", "I;16"):
        img = img.convert("RGBA" if "A" in img.mode or "transparency" in img.info else "RGB")
    return img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def load_photo(path: str | Path, max_side: int = DEFAULT_MAX_SIDE,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """Read a photo file as an upright sRGB image.

    Args:
        path: image file (JPEG, PNG, WebP, TIFF, BMP, ...).
        max_side: longest side of the result; larger images are downscaled (Lanczos).
        max_pixels: refuse files whose header declares more pixels than this.

    Returns:
        ``[3, H, W]`` float32, sRGB-encoded in [0, 1], row 0 at the top, EXIF orientation
        applied, transparency composited over white.

    Raises:
        InputError: missing, unreadable, damaged or oversized file.
    """
    path = Path(path)
    if max_side < 16:
        raise InputError(f"max_side must be at least 16 pixels, got {max_side}")
    img = _open(path, max_pixels)
    with img:
        img = _downscale(_decode(img, path, max_side), max_side)
        rgb = _to_float_rgb(img)
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))


def photo_from_array(image: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Validate an in-memory photo and return it as ``[3, H, W]`` float32 sRGB in [0, 1].

    Accepts ``[H, W, 3]`` uint8 (e.g. ``skimage.data.astronaut()``), ``[H, W]`` uint8
    grayscale, or a ``[3, H, W]`` float tensor/array already in [0, 1].
    """
    a = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim == 3 and a.shape[-1] in (3, 4) and a.shape[0] not in (3, 4):
        a = a[..., :3].transpose(2, 0, 1)
    if a.ndim != 3 or a.shape[0] != 3:
        raise InputError(f"photo must be [3, H, W] or [H, W, 3], got shape {a.shape}")
    if a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    elif a.dtype == np.uint16:
        a = a.astype(np.float32) / 65535.0
    else:
        a = a.astype(np.float32)
        if not np.isfinite(a).all() or a.min() < 0.0 or a.max() > 1.0:
            raise InputError("a float photo must hold finite sRGB values in [0, 1]")
    return torch.from_numpy(np.ascontiguousarray(a))


def to_uint8_hwc(photo: torch.Tensor) -> np.ndarray:
    """``[3, H, W]`` float sRGB in [0, 1] → ``[H, W, 3]`` uint8 (for mediapipe, PNG files)."""
    a = photo.detach().to("cpu", torch.float32).clamp(0, 1).permute(1, 2, 0).numpy()
    return np.ascontiguousarray((a * 255.0 + 0.5).astype(np.uint8))
