"""Camera sensor effects for synthetic photos: exposure noise and JPEG compression.

Pure NumPy/OpenCV on one image at a time; every random choice comes from the
``np.random.Generator`` passed in, so the same generator state gives the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from facerefl.render.color import linear_to_srgb


@dataclass(frozen=True)
class SensorSettings:
    """Ranges of the sensor model (each drawn uniformly per image).

    Attributes:
        photons: ``(lo, hi)`` full-well photon count at linear value 1 (log-uniform); shot
            noise std-dev is ``sqrt(x / photons)``.
        read_noise: ``(lo, hi)`` std-dev of additive Gaussian read noise (linear units).
        jpeg_quality: ``(lo, hi)`` JPEG quality; ``hi <= 0`` disables compression.
    """

    photons: tuple[float, float] = (300.0, 5000.0)
    read_noise: tuple[float, float] = (0.0005, 0.004)
    jpeg_quality: tuple[int, int] = (55, 95)


def add_noise(linear: np.ndarray, rng: np.random.Generator, settings: SensorSettings) -> np.ndarray:
    """Shot + read noise on a linear RGB image ``[h, w, 3]`` float32; result clipped to [0, 1]."""
    lo, hi = settings.photons
    photons = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    read = float(rng.uniform(*settings.read_noise))
    x = np.clip(linear, 0.0, None)
    sigma = np.sqrt(x / photons + read * read)
    return np.clip(x + sigma * rng.standard_normal(x.shape), 0.0, 1.0).astype(np.float32)


def jpeg_roundtrip(srgb: np.ndarray, quality: int) -> np.ndarray:
    """Encode/decode an sRGB image ``[h, w, 3]`` in [0, 1] with JPEG at ``quality`` (1-100)."""
    u8 = np.clip(np.round(srgb * 255.0), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(u8, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - OpenCV always encodes a valid uint8 image
        raise RuntimeError("JPEG encoding failed")
    dec = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return dec.astype(np.float32) / 255.0


def apply_sensor(
    linear: np.ndarray, rng: np.random.Generator, settings: SensorSettings
) -> np.ndarray:
    """Linear RGB render ``[h, w, 3]`` -> noisy, sRGB-encoded, JPEG-compressed ``[h, w, 3]``.

    Output is sRGB in [0, 1], quantised to 8 bits.
    """
    noisy = add_noise(linear, rng, settings)
    srgb = linear_to_srgb(torch.from_numpy(noisy)).numpy()
    lo, hi = settings.jpeg_quality
    if hi <= 0:
        return (np.round(np.clip(srgb, 0, 1) * 255.0) / 255.0).astype(np.float32)
    return jpeg_roundtrip(srgb, int(rng.integers(lo, hi + 1)))
