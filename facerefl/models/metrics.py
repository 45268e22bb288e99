"""Validation metrics for reflectance maps and SH lighting (all per example, ``[B]``).

PSNR conventions (peak 1):
- albedo (linear RGB) and specular are compared directly in [0, 1];
- normals are compared in their 8-bit encoding space ``(n + 1) / 2`` ∈ [0, 1];
- lighting is compared as radiance evaluated on a sphere quadrature, with the peak set to
  the largest ground-truth radiance of that example (so the number is scale-free).
Targets are resized to the prediction's resolution first (antialiased; unit normals are
renormalized).

The masked forms (:func:`masked_mse`, :func:`masked_psnr`, :func:`psnr_db`) are the one
PSNR of a region every stage uses: the fit's pixels, the evaluation's maps and images.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from facerefl.models.components.autoencoder import resize_reflectance
from facerefl.render.sh import sh_eval, sphere_quadrature


def psnr(pred: torch.Tensor, target: torch.Tensor, peak: torch.Tensor | float = 1.0) -> torch.Tensor:
    """``10·log10(peak² / MSE)`` per example over all non-batch dims → ``[B]`` (dB)."""
    mse = (pred - target).pow(2).flatten(1).mean(1).clamp_min(1e-12)
    peak = torch.as_tensor(peak, dtype=pred.dtype, device=pred.device)
    return 10.0 * torch.log10(peak.pow(2) / mse)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean squared error over the entries where ``mask`` > 0.5, every channel counted.

    ``mask`` broadcasts to ``pred``'s shape, so one layout-free rule serves maps
    ``[B, C, H, W]`` with a ``[B or 1, 1, H, W]`` mask, images ``[C, H, W]`` with
    ``[1, H, W]`` and gathered pixels ``[1, P, 3]`` with a ``[1, P, 1]`` weight.

    >>> masked_mse(torch.full((1, 2, 3), 0.5), torch.zeros(1, 2, 3), torch.tensor([[[1.0], [0.0]]]))
    0.25

    Raises:
        ValueError: the region is empty.
    """
    m = (mask > 0.5).to(pred.dtype).expand_as(pred)
    count = float(m.sum())
    if count == 0:
        raise ValueError("the metric region is empty")
    return float(((pred - target).square() * m).sum()) / count


def psnr_db(mse: float, peak: float = 1.0) -> float:
    """``10·log10(peak² / mse)`` in dB; ``inf`` for ``mse`` 0.

    >>> psnr_db(0.01)
    20.0
    """
    mse = max(float(mse), 0.0)
    return math.inf if mse == 0 else 10.0 * math.log10(peak * peak / mse)


def masked_psnr(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    """PSNR (dB, peak 1) of ``pred`` against ``target`` over ``mask`` (see :func:`masked_mse`)."""
    return psnr_db(masked_mse(pred, target, mask))


def _to_unit_range(x: torch.Tensor, kind: str) -> torch.Tensor:
    return (x + 1.0) * 0.5 if kind == "normal" else x


def map_psnr(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """PSNR of a reflectance map ``[B, C, h, w]`` against ``target`` (any size) → ``[B]``."""
    target = resize_reflectance(target, pred.shape[-1], kind)
    return psnr(_to_unit_range(pred, kind), _to_unit_range(target, kind))


def light_psnr(pred: torch.Tensor, target: torch.Tensor, n_theta: int = 16, n_phi: int = 32) -> torch.Tensor:
    """PSNR of SH lighting ``[B, 3, 9]`` as radiance over the sphere → ``[B]`` (dB)."""
    dirs, _ = sphere_quadrature(n_theta, n_phi, dtype=pred.dtype, device=pred.device)
    dirs = dirs.expand(pred.shape[0], -1, -1)
    rp, rt = sh_eval(pred, dirs), sh_eval(target, dirs)
    peak = rt.flatten(1).abs().amax(1).clamp_min(1e-6)
    mse = (rp - rt).pow(2).flatten(1).mean(1).clamp_min(1e-12)
    return 10.0 * torch.log10(peak.pow(2) / mse)


def high_pass(x: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """``x`` minus its Gaussian blur (std ``sigma`` texels, reflect padding): the detail band."""
    radius = max(1, int(round(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    xp = F.pad(x, (radius,) * 4, mode="reflect")
    blur = F.conv2d(xp, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    blur = F.conv2d(blur, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return x - blur


def detail_psnr(pred: torch.Tensor, target: torch.Tensor, kind: str, sigma: float = 1.0) -> torch.Tensor:
    """PSNR between the high-pass bands of ``pred`` and ``target`` (resized to ``pred``) → ``[B]``.

    Higher means the fine detail matches the ground truth better.
    """
    target = resize_reflectance(target, pred.shape[-1], kind)
    return psnr(high_pass(_to_unit_range(pred, kind), sigma), high_pass(_to_unit_range(target, kind), sigma))


def detail_energy_ratio(pred: torch.Tensor, target: torch.Tensor, kind: str, sigma: float = 1.0) -> torch.Tensor:
    """High-pass energy of ``pred`` over that of ``target`` → ``[B]`` (1 = as much detail as GT)."""
    target = resize_reflectance(target, pred.shape[-1], kind)
    ep = high_pass(_to_unit_range(pred, kind), sigma).pow(2).flatten(1).mean(1)
    et = high_pass(_to_unit_range(target, kind), sigma).pow(2).flatten(1).mean(1)
    return ep / et.clamp_min(1e-12)
