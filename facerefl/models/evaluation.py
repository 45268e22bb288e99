"""Validation of the assembled networks on held-out synthetic examples (before any fitting).

For each reflectance kind the ground truth is resized to the enhancer's output size and
compared with (a) the decoder output upsampled bilinearly to that size and (b) the
detail-enhanced output. "Detail" is measured on the high-pass band (map minus its
Gaussian blur, σ = 1 texel): its PSNR against the ground-truth band, and its energy
relative to the ground truth's. Light is compared as radiance on the sphere
(:func:`facerefl.models.metrics.light_psnr`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Iterable

import torch

from facerefl.models.components.autoencoder import resize_reflectance
from facerefl.models.components.heads import KINDS
from facerefl.models.components.level import eyes_fixed, level_errors, rescale_to_level, skin_level
from facerefl.models.metrics import detail_energy_ratio, detail_psnr, light_psnr, map_psnr
from facerefl.models.networks import ReflectanceNetworks


@torch.no_grad()
def evaluate_networks(nets: ReflectanceNetworks, batches: Iterable) -> dict[str, float]:
    """Mean metrics over ``batches`` of :class:`~facerefl.data.types.ReflectanceBatch`.

    Keys: ``<kind>/psnr`` (enhanced), ``<kind>/psnr_decoder``, ``<kind>/detail_psnr``,
    ``<kind>/detail_psnr_decoder``, ``<kind>/detail_energy``, ``<kind>/detail_energy_decoder``
    for each kind, ``light/psnr``, ``num_examples``, and the albedo level's root-mean-square
    ``log`` error over the valid skin (:mod:`facerefl.models.components.level`):
    ``level/encoders_rms_log`` of the enhanced albedo's mean, ``level/rms_log`` of the level
    regressor (when the networks have one); for the specular map likewise
    ``specular_level/encoders_rms_log`` and, with a specular-level regressor,
    ``specular_level/rms_log`` and ``specular/psnr_leveled``: the enhanced map rescaled to
    that regressor's mean (:func:`~facerefl.models.components.level.rescale_to_level`, the
    eyes left alone), as the fit's gauge does.
    """
    nets.freeze()
    sums: dict[str, float] = defaultdict(float)
    n = 0
    for batch in batches:
        code = nets.encode(batch.texture)
        coarse = nets.decode(code)
        fine = nets.enhance(coarse, batch.texture)
        for k in KINDS:
            out, gt = fine.get(k), getattr(batch, k)
            base = resize_reflectance(coarse.get(k), out.shape[-1], k)
            for name, pred in (("", out), ("_decoder", base)):
                sums[f"{k}/psnr{name}"] += map_psnr(pred, gt, k).sum().item()
                sums[f"{k}/detail_psnr{name}"] += detail_psnr(pred, gt, k).sum().item()
                sums[f"{k}/detail_energy{name}"] += detail_energy_ratio(pred, gt, k).sum().item()
        sums["light/psnr"] += light_psnr(code.light, batch.light).sum().item()
        enc = skin_level(fine.albedo, batch.texture).clamp_min(1e-4).log()
        sums["level/encoders_rms_log"] += level_errors(enc, batch.albedo, batch.texture).square().mean(1).sum().item()
        if nets.level is not None:
            sums["level/rms_log"] += level_errors(nets.albedo_level(batch.texture).log(), batch.albedo, batch.texture).square().mean(1).sum().item()
        spec_level = nets.specular_mean(batch.texture)
        enc = skin_level(fine.specular, batch.texture).clamp_min(1e-4).log()
        sums["specular_level/encoders_rms_log"] += level_errors(enc, batch.specular, batch.texture).square().mean(1).sum().item()
        if spec_level is not None:
            sums["specular_level/rms_log"] += level_errors(spec_level.log(), batch.specular, batch.texture).square().mean(1).sum().item()
            leveled, _ = rescale_to_level(fine.specular, spec_level, batch.texture, fixed=eyes_fixed(fine.specular))
            sums["specular/psnr_leveled"] += map_psnr(leveled, batch.specular, "specular").sum().item()
        n += batch.batch_size
    if n == 0:
        raise ValueError("no validation examples")
    out = {k: v / n for k, v in sorted(sums.items())}
    for k in [k for k in out if k.endswith("rms_log")]:
        out[k] = math.sqrt(out[k])  # the sums were of per-example mean squares
    return {**out, "num_examples": n}
