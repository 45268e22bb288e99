"""Real photos without ground truth: does the pipeline succeed, and how close is the
reconstruction to the photo?

Per photo: geometry stage → fit (:func:`facerefl.fit.pipeline.fit_geometry`); then, on the
working image (the photo cropped to the face by the geometry stage), sRGB:

* PSNR and SSIM of the reconstruction (rendering pasted over the photo) inside the face
  region (covered pixels on valid skin), as the fit stage measures them;
* LPIPS (VGG, the project's implementation, :func:`facerefl.models.components.perceptual.load_lpips`)
  between the reconstruction and the photo on the bounding box of the face region;
* wall time from loading the photo to the fitted maps.

A photo the geometry stage rejects (unreadable, no face, face too small) is a failure.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from facerefl.errors import InputError
from facerefl.eval.synthetic import composite
from facerefl.fit.loop import FitSettings
from facerefl.fit.pipeline import fit_geometry
from facerefl.geometry.result import GeometryConfig, build_face_geometry
from facerefl.models.networks import ReflectanceNetworks
from facerefl.render.color import linear_to_srgb

__all__ = ["PhotoResult", "face_lpips", "evaluate_photo", "photos_summary"]


@dataclass
class PhotoResult:
    """One photo's outcome; images are ``[3, H, W]`` sRGB (albedo: UV map), None on failure."""

    name: str
    ok: bool
    error: str | None = None
    psnr: float | None = None
    ssim: float | None = None
    lpips: float | None = None
    seconds: float = 0.0
    photo: Tensor | None = None
    reconstruction: Tensor | None = None
    albedo: Tensor | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "ok": self.ok, "error": self.error, "psnr": self.psnr,
                "ssim": self.ssim, "lpips": self.lpips, "seconds": self.seconds}


def face_lpips(lpips: torch.nn.Module, pred: Tensor, photo: Tensor, mask: Tensor) -> float:
    """LPIPS between ``pred`` and ``photo`` (``[3, H, W]`` sRGB in [0, 1]) on the bounding
    box of ``mask`` (``[1, H, W]``), at least 32 pixels a side."""
    ys, xs = torch.nonzero(mask[0] > 0.5, as_tuple=True)
    if ys.numel() == 0:
        raise ValueError("face region is empty")
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    a = pred[:, y0:y1, x0:x1][None]
    b = photo[:, y0:y1, x0:x1][None]
    if min(a.shape[-2:]) < 32:
        size = (max(32, a.shape[-2]), max(32, a.shape[-1]))
        a = torch.nn.functional.interpolate(a, size=size, mode="bilinear", align_corners=False)
        b = torch.nn.functional.interpolate(b, size=size, mode="bilinear", align_corners=False)
    with torch.no_grad():
        return float(lpips(a * 2 - 1, b * 2 - 1)[0])


def evaluate_photo(path: Path, nets: ReflectanceNetworks, settings: FitSettings,
                   geometry: GeometryConfig, lpips: torch.nn.Module) -> PhotoResult:
    """Fit one photo and measure it (module docstring); user errors become a failed row."""
    t0 = time.perf_counter()
    try:
        geom = build_face_geometry(path, geometry)
    except InputError as e:
        return PhotoResult(path.name, False, error=str(e).splitlines()[0],
                           seconds=time.perf_counter() - t0)
    fit = fit_geometry(geom, nets, settings)
    seconds = time.perf_counter() - t0
    recon = composite(fit)
    return PhotoResult(
        path.name, True, psnr=float(fit.metrics["psnr_final"]), ssim=float(fit.metrics["ssim_final"]),
        lpips=face_lpips(lpips, recon, geom.photo, fit.face_mask), seconds=seconds,
        photo=geom.photo, reconstruction=recon, albedo=linear_to_srgb(fit.result.maps.albedo[0]),
    )


def photos_summary(results: list[PhotoResult]) -> dict:
    """Success rate and means over the fitted photos (time: over all photos)."""
    ok = [r for r in results if r.ok]

    def mean(key: str) -> float | None:
        return float(np.mean([getattr(r, key) for r in ok])) if ok else None

    return {
        "count": len(results), "ok": len(ok),
        "success_rate": len(ok) / len(results) if results else None,
        "psnr": mean("psnr"), "ssim": mean("ssim"), "lpips": mean("lpips"),
        "seconds_per_photo": float(np.mean([r.seconds for r in results])) if results else None,
        "seconds_per_fitted_photo": mean("seconds"),
        "failed": [{"name": r.name, "error": r.error} for r in results if not r.ok],
    }


def photos_markdown(summary: dict, rows: list[PhotoResult]) -> str:
    """Summary line and one row per photo."""
    def f(v, d=2):
        return "–" if v is None else f"{v:.{d}f}"

    lines = ["| photo | status | PSNR (face) | SSIM | LPIPS | s |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.name} | {'ok' if r.ok else 'FAILED: ' + str(r.error)} | {f(r.psnr)} | "
                     f"{f(r.ssim, 3)} | {f(r.lpips, 3)} | {f(r.seconds, 1)} |")
    s = summary
    lines.append("")
    lines.append(f"Success {s['ok']}/{s['count']}; mean face PSNR {f(s['psnr'])} dB, SSIM "
                 f"{f(s['ssim'], 3)}, LPIPS {f(s['lpips'], 3)}; {f(s['seconds_per_photo'], 1)} s per photo.")
    return "\n".join(lines) + "\n"
