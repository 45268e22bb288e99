"""Compare one example's estimated maps and light with its ground truth (Table 1 row).

Region: the template's valid skin region in UV (:func:`facerefl.geometry.template.skin_uv_mask`:
face oval minus eyes, brows and inner mouth) at each ground-truth map's resolution — every
such texel, whether or not it was seen in the photo. Beyond the paper, ``albedo_features``
scores the albedo over what that region leaves out: the eyes, brows and inner mouth
(:func:`features_mask`), which Table 1 does not see. Estimated maps are resampled to the
ground truth's resolution (:func:`~facerefl.eval.metrics.resize_map`; normals renormalized).
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import numpy as np

import torch
import torch.nn.functional as F
from torch import Tensor

from facerefl.eval.metrics import (Score, albedo_srgb, channel_scale, light_score,
                                   normal_angle_deg, resize_map, score)
from facerefl.geometry.template import load_template, region_uv_mask, skin_uv_mask, uv_coverage_mask

__all__ = ["MapScores", "GroundTruth", "compare", "region_mask", "features_mask", "TABLE1_COLUMNS"]

#: Table 1's columns, in the paper's order.
TABLE1_COLUMNS = ("albedo", "normal", "specular", "light")


@dataclass(frozen=True)
class GroundTruth:
    """Ground truth of one example (batch of 1).

    albedo: ``[1, 3, H, W]`` linear RGB in [0, 1]; specular: ``[1, 1, Hs, Ws]`` in [0, 1];
    normal: ``[1, 3, Hs, Ws]`` tangent-space unit vectors; light: ``[1, 3, 9]`` SH radiance,
    camera frame, linear.
    """

    albedo: Tensor
    specular: Tensor
    normal: Tensor
    light: Tensor


@dataclass(frozen=True)
class MapScores:
    """Scores of one example; the four Table 1 columns plus variants.

    albedo: sRGB; albedo_linear: linear; normal: encoded (n+1)/2; normal_angle_deg: mean
    angle; specular: t_r; light: probe metric; albedo_aligned / light_aligned: after the
    per-channel albedo–light scale alignment; albedo_scale: the 3 scales applied;
    albedo_features: sRGB albedo over the eyes, brows and inner mouth (:func:`features_mask`).
    """

    albedo: Score
    albedo_linear: Score
    normal: Score
    normal_angle_deg: float
    specular: Score
    light: Score
    albedo_aligned: Score
    light_aligned: Score
    albedo_scale: tuple[float, float, float]
    albedo_features: Score

    def to_dict(self) -> dict:
        return asdict(self)


def region_mask(size: int, like: Tensor) -> Tensor:
    """``[1, 1, size, size]`` valid-skin UV region as a float tensor on ``like``'s device."""
    return torch.from_numpy(skin_uv_mask(None, size)).to(like.device, like.dtype)[None, None]


@functools.lru_cache(maxsize=4)
def _features_np(size: int) -> np.ndarray:
    t = load_template()
    face = region_uv_mask(t, t.region("face_oval"), size) & uv_coverage_mask(t, size)
    return (face & ~skin_uv_mask(None, size)).astype(np.float32)


def features_mask(size: int, like: Tensor) -> Tensor:
    """``[1, 1, size, size]`` the facial features in UV: the covered face oval outside the
    valid skin (the eyes, slightly enlarged, the brows and the inner mouth)."""
    return torch.from_numpy(_features_np(int(size))).to(like.device, like.dtype)[None, None]


def compare(albedo: Tensor, specular: Tensor, normal: Tensor, light: Tensor,
            gt: GroundTruth, probe_size: int = 64) -> MapScores:
    """Score estimated maps ``[1, C, h, w]`` (linear albedo, t_r, unit normals) and SH light
    ``[1, 3, 9]`` against ``gt``; see the module and :mod:`facerefl.eval.metrics` docstrings."""
    ha, hs, hn = gt.albedo.shape[-1], gt.specular.shape[-1], gt.normal.shape[-1]
    ma, ms, mn = region_mask(ha, gt.albedo), region_mask(hs, gt.albedo), region_mask(hn, gt.albedo)
    a = resize_map(albedo, ha).clamp(0, 1)
    s = resize_map(specular, hs).clamp(0, 1)
    n = F.normalize(resize_map(normal, hn), dim=1)
    scale = channel_scale(a, gt.albedo, ma)
    a_al = (a * scale[..., None, None]).clamp(0, 1)
    light_al = light / scale[..., None].clamp(min=1e-6)
    return MapScores(
        albedo=score(albedo_srgb(a), albedo_srgb(gt.albedo), ma),
        albedo_linear=score(a, gt.albedo, ma),
        normal=score((n + 1) / 2, (gt.normal + 1) / 2, mn),
        normal_angle_deg=normal_angle_deg(n, gt.normal, mn),
        specular=score(s, gt.specular, ms),
        light=light_score(light, gt.light, probe_size),
        albedo_aligned=score(albedo_srgb(a_al), albedo_srgb(gt.albedo), ma),
        light_aligned=light_score(light_al, gt.light, probe_size),
        albedo_scale=tuple(float(v) for v in scale[0]),
        albedo_features=score(albedo_srgb(a), albedo_srgb(gt.albedo), features_mask(ha, gt.albedo)),
    )


def flat_normal_score(gt: GroundTruth) -> Score:
    """The normal column's baseline: a flat tangent-space map, n = (0, 0, 1) everywhere,
    scored like :func:`compare` scores an estimate. An estimate adds information about the
    normals only where it beats this."""
    hn = gt.normal.shape[-1]
    flat = torch.zeros_like(gt.normal)
    flat[:, 2] = 1.0
    return score((flat + 1) / 2, (gt.normal + 1) / 2, region_mask(hn, gt.normal))
