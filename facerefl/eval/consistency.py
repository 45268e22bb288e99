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
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from facerefl.data.assemble import ExampleGenerator, GeneratorSettings, Sizes, stage_rng
from facerefl.data.lighting import LightPrior, LightSample, load_table, rotation_matrix
from facerefl.data.types import ReflectanceBatch
from facerefl.eval.compare import region_mask
from facerefl.eval.metrics import albedo_srgb, resize_map, score
from facerefl.eval.synthetic import ExampleResult

__all__ = ["FixedLight", "relit_examples", "consistency_summary", "Lighting", "BENCHMARK_LIGHTINGS",
           "NamedLight", "benchmark_example", "pairwise_psnr", "luminance_cov", "face_consistency",
           "benchmark_summary"]


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


# ---------------------------------------------------------------------------------------
# The lighting-consistency benchmark (Figure 7 generalised): K faces × L named lightings.


@dataclass(frozen=True)
class Lighting:
    """One named lighting of the benchmark: HDR map ``hdr`` turned by ``yaw_deg`` about the
    vertical and ``pitch_deg`` about x, at ``intensity`` times the prior's normalised level
    and tinted by ``tint`` (linear RGB, luminance kept). No auto white balance."""

    name: str
    hdr: str
    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    intensity: float = 1.0
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)


#: Eight lightings: soft and hard (the most directional maps, whose sun casts shadows in the
#: Monte Carlo renders), side and back light, coloured and dim.
BENCHMARK_LIGHTINGS: tuple[Lighting, ...] = (
    Lighting("studio", "studio"),
    Lighting("sun_left", "sky", yaw_deg=60.0),
    Lighting("sun_right_warm", "esplanade", yaw_deg=-75.0),
    Lighting("sunrise_high", "sunrise", yaw_deg=30.0, pitch_deg=20.0),
    Lighting("lab_side_back", "lab", yaw_deg=120.0),
    Lighting("green_forest", "forest", yaw_deg=-30.0, tint=(0.9, 1.25, 0.7)),
    Lighting("dim_hall", "hall", yaw_deg=45.0, intensity=0.25),
    Lighting("warm_dim", "apartment", yaw_deg=-120.0, intensity=0.5, tint=(1.35, 1.0, 0.6)),
)


class NamedLight:
    """Stands in for the generator's light prior and always returns one :class:`Lighting`."""

    def __init__(self, prior: LightPrior, lighting: Lighting) -> None:
        self.prior, self.lighting = prior, lighting

    def sample(self, rng: np.random.Generator, name: str | None = None) -> LightSample:
        lt = self.lighting
        rot = rotation_matrix(math.radians(lt.yaw_deg), math.radians(lt.pitch_deg), 0.0)
        tint = np.asarray(lt.tint, dtype=np.float64)
        tint = tint / float(np.array([0.2126, 0.7152, 0.0722]) @ tint)
        gain = self.prior.normalisation(lt.hdr) * lt.intensity * tint
        return LightSample(lt.hdr, rot, gain, self.prior.sh_of(lt.hdr, rot, gain))


def benchmark_example(seed: int, lighting: Lighting, sizes: Sizes, renderer: str = "mc",
                      spp: int = 64, bake_dirs: int = 256) -> ReflectanceBatch:
    """Face ``seed`` (pose, camera, reflectance of that generator seed) under ``lighting``."""
    gen = ExampleGenerator(GeneratorSettings(sizes=sizes, renderer=renderer, spp=spp, bake_dirs=bake_dirs,
                                             maps=tuple(sorted(load_table()))))
    gen.prior = NamedLight(gen.prior, lighting)
    return gen(seed)


def pairwise_psnr(est: list[Tensor], mask: Tensor, align: bool) -> list[float]:
    """PSNR (sRGB) between every pair of linear albedos ``[1, 3, S, S]`` over ``mask``; with
    ``align`` the second of each pair first takes the per-channel least-squares gain
    (in linear RGB) that best matches it to the first."""
    out = []
    for a, b in itertools.combinations(est, 2):
        if align:
            m = (mask > 0.5).to(a.dtype)
            g = (a * b * m).sum((2, 3)) / (b * b * m).sum((2, 3)).clamp_min(1e-8)
            b = (b * g[..., None, None]).clamp(0, 1)
        out.append(score(albedo_srgb(a), albedo_srgb(b), mask).psnr)
    return out


def luminance_cov(est: list[Tensor], mask: Tensor) -> float:
    """Mean over ``mask`` of the per-texel coefficient of variation (std / mean) of the linear
    luminance of the albedos ``[1, 3, S, S]`` across lightings."""
    w = torch.tensor([0.2126, 0.7152, 0.0722], dtype=est[0].dtype).view(1, 3, 1, 1)
    lum = torch.cat([(e * w).sum(1, keepdim=True) for e in est])
    cov = lum.std(0) / lum.mean(0).clamp_min(1e-4)
    return float(cov[mask[0] > 0.5].mean())


def face_consistency(albedos: list[Tensor], vs_truth: list[float], gt_albedo: Tensor) -> dict:
    """Consistency numbers of one face's albedos (linear, any size) across its lightings."""
    size = gt_albedo.shape[-1]
    mask = region_mask(size, gt_albedo)
    est = [resize_map(a, size).clamp(0, 1) for a in albedos]
    raw, aligned = pairwise_psnr(est, mask, False), pairwise_psnr(est, mask, True)
    return {
        "ok": len(est),
        "pairwise_psnr_mean": float(np.mean(raw)) if raw else None,
        "pairwise_psnr_min": float(np.min(raw)) if raw else None,
        "pairwise_psnr_aligned_mean": float(np.mean(aligned)) if aligned else None,
        "psnr_vs_truth_mean": float(np.mean(vs_truth)) if vs_truth else None,
        "luminance_cov": luminance_cov(est, mask) if len(est) >= 2 else None,
    }


def benchmark_summary(faces: list[dict]) -> dict:
    """Means over faces of :func:`face_consistency`'s numbers, one block per pipeline."""
    out = {}
    for pipe in ("default", "paper"):
        rows = [f[pipe] for f in faces if f[pipe]["ok"] >= 2]
        out[pipe] = {k: float(np.mean([r[k] for r in rows if r[k] is not None])) if rows else None
                     for k in ("pairwise_psnr_mean", "pairwise_psnr_min", "pairwise_psnr_aligned_mean",
                               "psnr_vs_truth_mean", "luminance_cov")}
        out[pipe]["faces"] = len(rows)
    return out
