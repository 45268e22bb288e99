"""``light.json`` (SH lighting on disk) and light-probe previews.

Lighting is a ``[3, 9]`` tensor of real, orthonormal order-2 spherical-harmonic
coefficients of the **incident radiance**, linear RGB, expressed in the camera frame
(+x right, +y up, +z towards the viewer), basis order
``[Y00, Y1-1, Y10, Y11, Y2-2, Y2-1, Y20, Y21, Y22]`` without Condon-Shortley sign (see
docs/conventions.md). ``light.json`` stores the 27 numbers color-major (9 red, 9 green,
9 blue), i.e. ``light.reshape(27)``, together with a description of that convention.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch

from facerefl.errors import InputError
from facerefl.fsutil import atomic_write_json
from facerefl.render.sh import irradiance, probe_normals, sh_eval

LIGHT_FORMAT = "facerefl.sh_light.v1"

SH_BASIS_NAMES = ("Y00", "Y1-1", "Y10", "Y11", "Y2-2", "Y2-1", "Y20", "Y21", "Y22")
_SH_POLYNOMIALS = (
    "0.5*sqrt(1/pi)",
    "sqrt(3/(4pi))*y",
    "sqrt(3/(4pi))*z",
    "sqrt(3/(4pi))*x",
    "0.5*sqrt(15/pi)*x*y",
    "0.5*sqrt(15/pi)*y*z",
    "0.25*sqrt(5/pi)*(3z^2-1)",
    "0.5*sqrt(15/pi)*x*z",
    "0.25*sqrt(15/pi)*(x^2-y^2)",
)


def _check_light(light: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(light, torch.Tensor):
        light = light.detach().to("cpu", torch.float64).numpy()
    arr = np.asarray(light, np.float64)
    if arr.shape != (3, 9):
        raise ValueError(f"SH light must have shape [3, 9] (RGB x 9 coefficients), got {tuple(arr.shape)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("SH light holds NaN or infinite coefficients")
    return arr


def light_document(light: torch.Tensor | np.ndarray) -> dict:
    """The JSON-ready description of ``light`` (``[3, 9]``) written to ``light.json``."""
    arr = _check_light(light)
    return {
        "format": LIGHT_FORMAT,
        "coefficients": [float(v) for v in arr.reshape(27)],
        "layout": "color-major: coefficients[9*c + k] is basis k of color c (c: 0=R, 1=G, 2=B)",
        "basis_order": list(SH_BASIS_NAMES),
        "basis_functions": dict(zip(SH_BASIS_NAMES, _SH_POLYNOMIALS)),
        "normalization": "real orthonormal spherical harmonics on the unit sphere, no Condon-Shortley phase",
        "quantity": "incident radiance L(w) = sum_k c_k Y_k(w), w the unit direction light arrives from",
        "color_space": "linear RGB",
        "frame": "camera frame, OpenGL style: +x right, +y up, +z towards the viewer",
        "units": "linear image units: an albedo-1 Lambertian surface with normal n reflects "
        "sum_k A_l c_k Y_k(n) with A = (1, 2/3, 1/4) for bands l = (0, 1, 2)",
    }


def save_light_json(path: str | os.PathLike, light: torch.Tensor | np.ndarray) -> Path:
    """Write ``light`` (``[3, 9]`` SH incident radiance, linear RGB, camera frame) to JSON atomically."""
    return atomic_write_json(path, light_document(light))


def load_light_json(path: str | os.PathLike) -> torch.Tensor:
    """Read a ``light.json`` back as a float32 ``[3, 9]`` tensor.

    Raises:
        InputError: the file is missing, not JSON, of another format, or not 27 numbers.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise InputError(f"light file {path} does not exist") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"light file {path} is not valid JSON: {e}") from e
    if not isinstance(doc, dict) or doc.get("format") != LIGHT_FORMAT:
        raise InputError(f"{path} is not a facerefl light file (expected format {LIGHT_FORMAT!r})")
    coeffs = doc.get("coefficients")
    if (
        not isinstance(coeffs, list)
        or len(coeffs) != 27
        or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in coeffs)
    ):
        raise InputError(f"{path}: 'coefficients' must be a list of 27 finite numbers")
    return torch.tensor(coeffs, dtype=torch.float32).reshape(3, 9)


def _as_batch(light: torch.Tensor | np.ndarray) -> torch.Tensor:
    return torch.from_numpy(_check_light(light))[None]  # [1, 3, 9] float64


def diffuse_sphere(light: torch.Tensor | np.ndarray, size: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """A white (albedo 1) Lambertian sphere under ``light``, seen from +z (orthographic).

    Shows ``irradiance(n) / pi``, the radiance such a surface reflects (no occlusion).

    Returns:
        ``([3, S, S], [S, S])``: float32 linear RGB (0 outside the disc; may exceed 1)
        and the boolean disc mask.
    """
    n, mask = probe_normals(size, torch.float64)
    rgb = irradiance(_as_batch(light), n[None])[0].permute(2, 0, 1) / math.pi
    return torch.where(mask, rgb, 0.0).float(), mask


def mirror_ball(light: torch.Tensor | np.ndarray, size: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """A mirror sphere reflecting the SH radiance, seen from +z (orthographic).

    Each disc pixel shows ``L(r)`` with ``r = 2 (n.v) n - v``, ``v = +z``: the whole sphere
    of directions, the camera's back (-z) at the rim.

    Returns:
        ``([3, S, S], [S, S])``: float32 linear RGB radiance (0 outside the disc) and the mask.
    """
    n, mask = probe_normals(size, torch.float64)
    view = torch.tensor([0.0, 0.0, 1.0], dtype=n.dtype)
    r = 2.0 * n[..., 2:3] * n - view
    rgb = sh_eval(_as_batch(light), r[None])[0].permute(2, 0, 1)
    return torch.where(mask, rgb, 0.0).float(), mask


def tone_map(rgb: torch.Tensor, mask: torch.Tensor, white: float = 2.0, percentile: float = 0.99) -> torch.Tensor:
    """Expose and tone-map linear radiance for display.

    The exposure puts the ``percentile`` of the brightest channel inside ``mask`` at 1,
    then the extended Reinhard curve ``x (1 + x / white^2) / (1 + x)`` rolls the highlights
    off, reaching 1 only at ``white`` (so at most ``1 - percentile`` of the pixels clip).
    Negative radiance (an SH light rings below zero) shows as black.

    Args:
        rgb: ``[3, H, W]`` linear RGB.
        mask: ``[H, W]`` bool, the pixels that set the exposure.

    Returns:
        ``[3, H, W]`` linear values in [0, 1] (encode as sRGB to view).
    """
    x = rgb.clamp_min(0.0)
    peak = x.amax(0)[mask]
    scale = 1.0 / max(float(torch.quantile(peak.double(), percentile)) if peak.numel() else 0.0, 1e-8)
    x = x * scale
    return (x * (1.0 + x / white**2) / (1.0 + x)).clamp(0.0, 1.0)


def light_probe_image(
    light: torch.Tensor | np.ndarray, size: int = 128, background: float = 0.18
) -> torch.Tensor:
    """Side-by-side preview ``[diffuse sphere | mirror ball]`` of ``light``, tone-mapped.

    Both spheres share one exposure (:func:`tone_map`, set by the mirror ball, which
    shows the brightest radiance), so their relative brightness is kept; the absolute
    values are in ``light.json``.

    Returns:
        ``[3, S, 2S]`` float32 linear RGB in [0, 1] (write it sRGB-encoded), background
        ``background`` outside the discs.
    """
    diffuse, mask = diffuse_sphere(light, size)
    mirror, _ = mirror_ball(light, size)
    pair = torch.cat([diffuse, mirror], dim=2)
    masks = torch.cat([mask, mask], dim=1)
    exposure_mask = torch.cat([torch.zeros_like(mask), mask], dim=1)
    mapped = tone_map(pair, exposure_mask)
    return torch.where(masks, mapped, background)
