"""Figure 7: one synthetic face under several lightings; how much do its albedos differ?

The face (reflectance, pose, camera, sensor) is synthetic example ``seed``; lighting ``k``
is the light the generator would draw for example ``seed + 1 + k`` (any HDR map of the
table, random rotation, intensity and white balance). Each rendering goes through the full
pipeline (:mod:`facerefl.eval.synthetic`). Reported, on sRGB albedo over the valid skin
region: PSNR between every pair of estimated albedos (mean and minimum), PSNR of each
against the ground truth (raw and scale-aligned), and the mean per-texel standard deviation
across lightings.
"""

from __future__ import annotations

import itertools
import numpy as np
import torch
from torch import Tensor

from facerefl.data.assemble import ExampleGenerator, GeneratorSettings, Sizes, stage_rng
from facerefl.data.lighting import LightPrior, LightSample, load_table
from facerefl.data.types import ReflectanceBatch
from facerefl.eval.compare import region_mask
from facerefl.eval.metrics import albedo_srgb, resize_map, score
from facerefl.eval.synthetic import ExampleResult

__all__ = ["FixedLight", "relit_examples", "consistency_summary"]


class FixedLight:
    """Stands in for the generator's light prior and always draws example ``light_seed``'s
    light, so that only the lighting of an example changes."""

    def __init__(self, prior: LightPrior, light_seed: int) -> None:
        self.prior, self.light_seed = prior, int(light_seed)

    def sample(self, rng: np.random.Generator, name: str | None = None) -> LightSample:
        return self.prior.sample(stage_rng(self.light_seed, "light"), name)


def relit_examples(seed: int, count: int, sizes: Sizes, renderer: str = "mc",
                   spp: int = 64, bake_dirs: int = 256) -> list[tuple[str, ReflectanceBatch]]:
    """Example ``seed`` rendered under ``count`` lightings: ``[(name, example), ...]``."""
    settings = GeneratorSettings(sizes=sizes, renderer=renderer, spp=spp, bake_dirs=bake_dirs,
                                 maps=tuple(sorted(load_table())))
    gen = ExampleGenerator(settings)
    prior = gen.prior
    out = []
    for k in range(count):
        gen.prior = FixedLight(prior, seed + 1 + k)
        out.append((f"{seed}_light{k}", gen(seed)))
    gen.prior = prior
    return out


def consistency_summary(results: list[ExampleResult], gt_albedo: Tensor) -> dict:
    """Spread of the estimated albedos of one face (see the module docstring).

    Args:
        results: one per lighting; failed ones are skipped.
        gt_albedo: ``[1, 3, H, W]`` true albedo, linear.
    """
    ok = [r for r in results if r.ok and r.albedo is not None]
    size = gt_albedo.shape[-1]
    mask = region_mask(size, gt_albedo)
    est = [albedo_srgb(resize_map(r.albedo, size)) for r in ok]
    pairs = [score(a, b, mask).psnr for a, b in itertools.combinations(est, 2)]
    out = {
        "lightings": len(results),
        "ok": len(ok),
        "psnr_vs_truth": [r.scores.albedo.psnr for r in ok],
        "psnr_vs_truth_aligned": [r.scores.albedo_aligned.psnr for r in ok],
        "pairwise_psnr_mean": float(np.mean(pairs)) if pairs else None,
        "pairwise_psnr_min": float(np.min(pairs)) if pairs else None,
        "texel_std_mean": None,
    }
    if len(est) >= 2:
        std = torch.cat(est).std(0, keepdim=True)
        m = (mask > 0.5).expand_as(std)
        out["texel_std_mean"] = float(std[m].mean())
    if ok:
        out["psnr_vs_truth_mean"] = float(np.mean(out["psnr_vs_truth"]))
        out["psnr_vs_truth_aligned_mean"] = float(np.mean(out["psnr_vs_truth_aligned"]))
    return out
