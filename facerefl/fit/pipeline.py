"""One photo end to end: geometry → encoders → latent optimization → metrics.

:func:`fit_photo` composes the stages and times each; the task layer
(:mod:`facerefl.tasks.optimize`) adds input handling, output folders and exporting.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import kornia
import torch
from torch import Tensor

from facerefl.fit.loop import FitProblem, FitResult, FitSettings, fit_latents, render_maps
from facerefl.geometry.result import FaceGeometry
from facerefl.models.metrics import masked_psnr
from facerefl.models.networks import ReflectanceNetworks
from facerefl.render.color import srgb_to_linear
from facerefl.render.shading import prepare_gbuffer
from facerefl.render.texture import sample_texture

__all__ = ["PhotoFit", "problem_from_geometry", "fit_geometry", "on_networks_device", "image_metrics"]


def problem_from_geometry(geom: FaceGeometry, roughness: float) -> FitProblem:
    """Gather the photo's covered pixels, target colours and face-region mask.

    The face region is every covered pixel inside the geometry stage's skin region whose UV
    also lands on valid skin in T's mask channel (nearest texel), so eyes, the mouth
    interior and texels hidden in the photo do not pull on the reflectance.
    """
    texture = geom.texture
    prep = prepare_gbuffer(geom.gbuffer, geom.visibility_sh, geom.bent_normal, roughness=roughness)
    target = prep.gather(geom.photo.permute(1, 2, 0)[None])
    skin_uv = sample_texture(texture[:, 3:4], prep.uv, mode="nearest") > 0.5
    skin_px = prep.gather(geom.face_mask) > 0.5
    covered = (prep.index < prep.height * prep.width)[..., None]
    weight = (skin_uv & skin_px & covered).to(target.dtype)
    return FitProblem(texture=texture, prepared=prep, target=target, weight=weight)


def image_metrics(pred_srgb: Tensor, photo: Tensor, mask: Tensor) -> dict[str, float]:
    """PSNR and SSIM of a rendering against the photo inside a mask.

    Args:
        pred_srgb: ``[3, H, W]`` rendering composited over the photo, sRGB in [0, 1].
        photo: ``[3, H, W]`` sRGB in [0, 1].
        mask: ``[1, H, W]`` region (1 inside).

    Returns:
        ``{"psnr": dB, "ssim": mean SSIM (11×11 Gaussian window) over the region}``.
    """
    m = mask > 0.5
    psnr = masked_psnr(pred_srgb, photo, mask)
    ssim_map = kornia.metrics.ssim(pred_srgb[None].clamp(0, 1), photo[None], window_size=11)
    ssim = float((ssim_map.mean(1, keepdim=True)[0] * m).sum() / m.sum().clamp(min=1))
    return {"psnr": psnr, "ssim": ssim}


@dataclass
class PhotoFit:
    """Everything one fit produced (batch axis removed where it is 1).

    Attributes:
        geometry: the photo's :class:`FaceGeometry`.
        result: the optimizer's :class:`FitResult` (best maps and light, loss history).
        rendering: ``[3, H, W]`` final reconstruction, linear RGB, 0 off the face.
        initial_rendering: ``[3, H, W]`` encoder-only reconstruction, linear RGB.
        face_mask: ``[1, H, W]`` the loss region (covered pixels on valid skin).
        coverage: ``[1, H, W]`` all covered pixels.
        metrics: PSNR/SSIM in the face region before and after optimization, iterations.
        timings: seconds per stage.
    """

    geometry: FaceGeometry
    result: FitResult
    rendering: Tensor
    initial_rendering: Tensor
    face_mask: Tensor
    coverage: Tensor
    metrics: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def _to_image(problem: FitProblem, pixels: Tensor) -> Tensor:
    """``[1, P, C]`` → ``[C, H, W]``."""
    return problem.prepared.scatter(pixels)[0].permute(2, 0, 1)


def on_networks_device(geom: FaceGeometry, nets: ReflectanceNetworks) -> FaceGeometry:
    """``geom`` on the device of the networks' parameters (the geometry stage builds it on
    the CPU; the fit runs where the networks are). The one place the fit moves data."""
    device = next(nets.parameters()).device
    return geom if geom.texture.device == device else geom.to(device)


def fit_geometry(
    geom: FaceGeometry,
    nets: ReflectanceNetworks,
    settings: FitSettings,
    on_step: Callable[[int, float], None] | None = None,
) -> PhotoFit:
    """Encode, optimize and measure one photo whose geometry is already built.

    The geometry goes to the networks' device first (:func:`on_networks_device`); every
    tensor of the returned :class:`PhotoFit` lives there.
    """
    t0 = time.perf_counter()
    geom = on_networks_device(geom, nets)
    problem = problem_from_geometry(geom, settings.roughness)
    t_prep = time.perf_counter() - t0
    result = fit_latents(nets, problem, settings, on_step=on_step)
    with torch.no_grad():
        final = render_maps(problem, result.maps, result.light, settings, result.shading)
        first = render_maps(problem, result.initial_maps, result.initial_light, settings)
    face = _to_image(problem, problem.weight)
    cover = _to_image(problem, (problem.prepared.index < problem.prepared.height * problem.prepared.width)
                      [..., None].to(final.dtype))
    photo = geom.photo
    metrics: dict[str, float] = {}
    for name, pred in (("initial", first), ("final", final)):
        comp = photo * (1 - cover) + _to_image(problem, pred) * cover
        m = image_metrics(comp, photo, face)
        metrics[f"psnr_{name}"] = m["psnr"]
        metrics[f"ssim_{name}"] = m["ssim"]
        metrics[f"psnr_{name}_pixels"] = masked_psnr(pred, problem.target, problem.weight)
    if result.latent_maps is not None and result.latent_maps is not result.maps:
        with torch.no_grad():
            lat = render_maps(problem, result.latent_maps, result.light, settings)
        comp = photo * (1 - cover) + _to_image(problem, lat) * cover
        m = image_metrics(comp, photo, face)
        metrics["psnr_latent"] = m["psnr"]
        metrics["ssim_latent"] = m["ssim"]
        metrics["refine_iterations"] = float(len(result.losses) - result.latent_steps)
    if result.out_of_range is not None:
        metrics["skin_out_of_range"] = result.out_of_range
    metrics["psnr_gain"] = metrics["psnr_final"] - metrics["psnr_initial"]
    metrics["iterations"] = float(result.adam_steps)
    metrics["best_iteration"] = float(result.best_iteration)
    metrics["loss_initial"] = result.initial_loss
    metrics["loss_final"] = result.best_loss
    metrics["ms_per_iteration"] = result.ms_per_iteration
    metrics["face_pixels"] = float(problem.weight.sum())
    return PhotoFit(
        geometry=geom,
        result=result,
        rendering=srgb_to_linear(_to_image(problem, final)),
        initial_rendering=srgb_to_linear(_to_image(problem, first)),
        face_mask=face,
        coverage=cover,
        metrics=metrics,
        timings={"prepare": t_prep, "encoding": result.encode_seconds,
                 "optimization": result.seconds - result.encode_seconds - result.delight_seconds,
                 "delighting": result.delight_seconds},
    )

