"""Error metrics between estimated and ground-truth reflectance and lighting (Table 1).

Every map metric is computed in UV space (NCHW, row 0 = v 1, docs/conventions.md) at the
ground truth's resolution over a region mask, with peak value 1:

* ``PSNR = 10 log10(1 / MSE)`` dB and ``RMSE = sqrt(MSE)``, MSE averaged over the region's
  texels and the map's channels.
* **albedo**: sRGB-encoded values in [0, 1] (the way an albedo texture is stored and
  viewed; linear-space scores are reported as well).
* **normal**: the encoded values ``(n + 1) / 2`` in [0, 1] of the tangent-space normals
  (and, separately, the mean angle between the normals in degrees).
* **specular**: the intensity t_r in [0, 1] as is.
* **light**: a light probe: the front-facing unit sphere (camera frame, orthographic view
  along −z, ``probe_size``² pixels) shaded as a white Lambertian surface,
  ``E(n) / π`` from the SH lighting, linear RGB. Both probes are divided by the largest
  value of the ground-truth probe, so the truth lies in [0, 1]; PSNR/RMSE as above over
  the sphere's pixels.

An SH light and the albedo share a per-channel scale ambiguity (``a·s`` with ``L/s`` gives
the same diffuse image). :func:`channel_scale` finds the least-squares per-channel scale
of the estimated albedo (linear) against the truth; the "aligned" scores apply it to the
albedo and its inverse to the light.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from facerefl.models.metrics import masked_mse as shared_masked_mse
from facerefl.models.metrics import psnr_db
from facerefl.render.color import linear_to_srgb
from facerefl.render.sh import irradiance, probe_normals

__all__ = [
    "Score", "masked_mse", "score", "resize_map", "channel_scale", "probe_normals",
    "light_probe", "light_score", "normal_angle_deg",
]


@dataclass(frozen=True)
class Score:
    """PSNR (dB, peak 1; ``inf`` for identical inputs) and RMSE of one comparison."""

    psnr: float
    rmse: float

    @staticmethod
    def from_mse(mse: float) -> "Score":
        """PSNR and RMSE of a mean squared error (peak 1; negative values count as 0).

        >>> Score.from_mse(0.01).psnr
        20.0
        """
        mse = max(float(mse), 0.0)
        return Score(psnr_db(mse), math.sqrt(mse))


def masked_mse(pred: Tensor, target: Tensor, mask: Tensor) -> float:
    """Mean squared error over the texels where ``mask`` > 0.5 and over channels.

    Args:
        pred, target: ``[B, C, H, W]`` (same shape).
        mask: ``[B or 1, 1, H, W]`` region.

    Raises:
        ValueError: mismatched shapes or an empty region.
    """
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(f"pred and target must be equal [B, C, H, W], got {tuple(pred.shape)} "
                         f"and {tuple(target.shape)}")
    if mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[-2:] != pred.shape[-2:]:
        raise ValueError(f"mask must be [B, 1, {pred.shape[2]}, {pred.shape[3]}], got {tuple(mask.shape)}")
    return shared_masked_mse(pred, target, mask)


def score(pred: Tensor, target: Tensor, mask: Tensor) -> Score:
    """PSNR and RMSE of ``pred`` against ``target`` (both in [0, 1]) inside ``mask``.

    >>> t = torch.zeros(1, 1, 2, 2); m = torch.ones(1, 1, 2, 2)
    >>> score(t + 0.1, t, m).rmse  # doctest: +ELLIPSIS
    0.1...
    """
    return Score.from_mse(masked_mse(pred, target, mask))


def resize_map(x: Tensor, size: int) -> Tensor:
    """Resample a UV map ``[B, C, H, W]`` to ``size``² (bilinear, antialiased when shrinking)."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=x.shape[-1] > size)


def channel_scale(pred: Tensor, target: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """Per-channel least-squares scale ``s`` minimizing ``‖s·pred − target‖²`` in ``mask``.

    Args:
        pred, target: ``[B, C, H, W]`` linear values.
        mask: ``[B or 1, 1, H, W]``.

    Returns:
        ``[B, C]`` scales.
    """
    m = (mask > 0.5).to(pred.dtype)
    num = (pred * target * m).sum((2, 3))
    den = (pred * pred * m).sum((2, 3))
    return num / den.clamp(min=eps)


def light_probe(light: Tensor, size: int = 64) -> Tensor:
    """A white Lambertian sphere lit by SH ``light``: ``[B, 3, size, size]`` linear RGB.

    Args:
        light: ``[B, 3, 9]`` incident-radiance SH, camera frame, linear.

    Pixels off the sphere are 0.
    """
    n, inside = probe_normals(size, light.dtype, light.device)
    e = irradiance(light, n[None].expand(light.shape[0], -1, -1, -1)) / math.pi
    return (e * inside[None, ..., None]).permute(0, 3, 1, 2)


def light_score(pred: Tensor, target: Tensor, size: int = 64) -> Score:
    """Light-probe PSNR/RMSE (module docstring) of SH ``pred`` against ``target`` ``[1, 3, 9]``."""
    p, t = light_probe(pred, size), light_probe(target, size)
    peak = float(t.amax())
    if not peak > 0:
        raise ValueError("the ground-truth light probe is black; cannot normalise the light metric")
    _, inside = probe_normals(size, pred.dtype, pred.device)
    return score(p / peak, t / peak, inside[None, None])


def normal_angle_deg(pred: Tensor, target: Tensor, mask: Tensor) -> float:
    """Mean angle (degrees) between unit normal maps ``[B, 3, H, W]`` inside ``mask``."""
    cos = (F.normalize(pred, dim=1) * F.normalize(target, dim=1)).sum(1, keepdim=True)
    ang = torch.rad2deg(torch.acos(cos.clamp(-1, 1)))
    m = (mask > 0.5).to(pred.dtype).expand_as(ang)
    return float((ang * m).sum() / m.sum().clamp(min=1))


def albedo_srgb(albedo_linear: Tensor) -> Tensor:
    """Linear albedo → sRGB-encoded values in [0, 1] (the space albedo PSNR is reported in)."""
    return linear_to_srgb(albedo_linear.clamp(0, 1))
