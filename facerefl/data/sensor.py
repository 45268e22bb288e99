"""Camera sensor effects for synthetic photos: exposure noise and JPEG compression.

Plus the optional camera effects of issue 13 (:class:`CameraEffects`, drawn from
:class:`~facerefl.data.effects.CameraSettings`): defocus and motion blur and vignetting
on the linear image, a noisier sensor, then sharpening and chroma subsampling on the
sRGB image before JPEG.

Pure NumPy/OpenCV on one image at a time; every random choice comes from the
``np.random.Generator`` passed in, so the same generator state gives the same bytes.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np
import torch

from facerefl.data.effects import CameraSettings
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
    linear: np.ndarray, rng: np.random.Generator, settings: SensorSettings,
    finish: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Linear RGB render ``[h, w, 3]`` -> noisy, sRGB-encoded, JPEG-compressed ``[h, w, 3]``.

    ``finish`` (optional) processes the sRGB image ``[h, w, 3]`` in [0, 1] before JPEG
    (the camera's sharpening and chroma subsampling, :meth:`CameraEffects.finish`).
    Output is sRGB in [0, 1], quantised to 8 bits.
    """
    noisy = add_noise(linear, rng, settings)
    srgb = linear_to_srgb(torch.from_numpy(noisy)).numpy()
    if finish is not None:
        srgb = np.clip(finish(srgb), 0.0, 1.0).astype(np.float32)
    lo, hi = settings.jpeg_quality
    if hi <= 0:
        return (np.round(np.clip(srgb, 0, 1) * 255.0) / 255.0).astype(np.float32)
    return jpeg_roundtrip(srgb, int(rng.integers(lo, hi + 1)))


# ------------------------------------------------------------------- camera effects


@dataclass(frozen=True)
class CameraEffects:
    """The camera effects of one photo (0 / False: absent).

    Attributes:
        defocus_px: Gaussian blur std-dev (pixels).
        motion_px: motion streak length (pixels); ``motion_deg`` its direction.
        vignetting: fraction of light lost in the image corners.
        noise_gain: factor on the sensor noise std-dev (1: the base sensor).
        sharpen_amount: unsharp-mask amount; ``sharpen_px`` its std-dev (pixels).
        chroma: 4:2:0 chroma subsampling.
    """

    defocus_px: float = 0.0
    motion_px: float = 0.0
    motion_deg: float = 0.0
    vignetting: float = 0.0
    noise_gain: float = 1.0
    sharpen_amount: float = 0.0
    sharpen_px: float = 1.0
    chroma: bool = False

    def optics(self, linear: np.ndarray) -> np.ndarray:
        """Blur and vignetting of a linear image ``[h, w, 3]`` (float32, same shape)."""
        out = linear.astype(np.float32)
        if self.defocus_px > 0:
            out = cv2.GaussianBlur(out, (0, 0), self.defocus_px, borderType=cv2.BORDER_REFLECT)
        if self.motion_px > 0:
            out = cv2.filter2D(out, -1, motion_kernel(self.motion_px, self.motion_deg),
                               borderType=cv2.BORDER_REFLECT)
        if self.vignetting > 0:
            h, w = out.shape[:2]
            y = (np.arange(h, dtype=np.float32) + 0.5 - h / 2) / (h / 2)
            x = (np.arange(w, dtype=np.float32) + 0.5 - w / 2) / (w / 2)
            r2 = (y[:, None] ** 2 + x[None, :] ** 2) / 2  # 1 in the corners
            out = out * (1 - self.vignetting * r2)[..., None]
        return out

    def sensor(self, base: SensorSettings) -> SensorSettings:
        """``base`` with the noise std-dev scaled by ``noise_gain`` (same random draws)."""
        if self.noise_gain == 1.0:
            return base
        g = self.noise_gain
        return dataclasses.replace(base, photons=(base.photons[0] / g**2, base.photons[1] / g**2),
                                   read_noise=(base.read_noise[0] * g, base.read_noise[1] * g))

    def finish(self, srgb: np.ndarray) -> np.ndarray:
        """Sharpening and chroma subsampling of an sRGB image ``[h, w, 3]`` in [0, 1]."""
        out = srgb.astype(np.float32)
        if self.sharpen_amount > 0:
            blur = cv2.GaussianBlur(out, (0, 0), self.sharpen_px, borderType=cv2.BORDER_REFLECT)
            out = out + self.sharpen_amount * (out - blur)
        if self.chroma:
            out = chroma_subsample(np.clip(out, 0, 1))
        return out


def motion_kernel(length: float, angle_deg: float) -> np.ndarray:
    """Normalised line kernel of ``length`` pixels at ``angle_deg`` (float32, odd size)."""
    k = int(math.ceil(length)) | 1
    img = np.zeros((k * 4, k * 4), np.float32)
    a = math.radians(angle_deg)
    c = np.array([k * 2, k * 2]) - 0.5
    d = 0.5 * length * 4 * np.array([math.cos(a), -math.sin(a)])
    p0, p1 = np.round((c - d) * 16).astype(np.int32), np.round((c + d) * 16).astype(np.int32)
    cv2.line(img, tuple(int(v) for v in p0), tuple(int(v) for v in p1), 1.0, 4, cv2.LINE_AA, 4)
    ker = cv2.resize(img, (k, k), interpolation=cv2.INTER_AREA)
    return ker / max(float(ker.sum()), 1e-8)


def chroma_subsample(srgb: np.ndarray) -> np.ndarray:
    """4:2:0 subsampling: chroma (YCrCb) averaged over 2x2 blocks and upsampled bilinearly."""
    h, w = srgb.shape[:2]
    ycc = cv2.cvtColor(srgb.astype(np.float32), cv2.COLOR_RGB2YCrCb)
    small = cv2.resize(ycc[..., 1:], ((w + 1) // 2, (h + 1) // 2), interpolation=cv2.INTER_AREA)
    ycc[..., 1:] = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB)


def sample_camera(rng: np.random.Generator, s: CameraSettings) -> CameraEffects:
    """Draw one photo's camera effects (each item with its own probability)."""
    on = {k: rng.random() < getattr(s, k)
          for k in ("defocus", "motion", "vignetting", "noise", "sharpen", "chroma")}
    return CameraEffects(
        defocus_px=float(rng.uniform(*s.defocus_px)) if on["defocus"] else 0.0,
        motion_px=float(rng.uniform(*s.motion_px)) if on["motion"] else 0.0,
        motion_deg=float(rng.uniform(0.0, 180.0)),
        vignetting=float(rng.uniform(*s.vignetting_strength)) if on["vignetting"] else 0.0,
        noise_gain=float(rng.uniform(*s.noise_gain)) if on["noise"] else 1.0,
        sharpen_amount=float(rng.uniform(*s.sharpen_amount)) if on["sharpen"] else 0.0,
        sharpen_px=float(rng.uniform(*s.sharpen_px)),
        chroma=bool(on["chroma"]),
    )
