"""Metric definitions on inputs with known answers."""

from __future__ import annotations

import math

import pytest
import torch

from facerefl.eval.compare import GroundTruth, compare, region_mask
from facerefl.geometry.template import eyes_uv_coverage
from facerefl.eval.metrics import (Score, channel_scale, light_probe, light_score, masked_mse,
                                   normal_angle_deg, probe_normals, resize_map, score)
from facerefl.render.sh import SH_COUNT


def test_score_from_mse_known_values():
    s = Score.from_mse(0.01)
    assert s.psnr == pytest.approx(20.0)
    assert s.rmse == pytest.approx(0.1)
    assert Score.from_mse(0.0).psnr == math.inf and Score.from_mse(0.0).rmse == 0.0


def test_score_counts_only_the_region():
    target = torch.zeros(1, 3, 4, 4)
    pred = target.clone()
    pred[..., :2, :] = 0.1          # inside the region: error 0.1
    pred[..., 2:, :] = 0.9          # outside: ignored
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :] = 1
    s = score(pred, target, mask)
    assert s.rmse == pytest.approx(0.1, rel=1e-5)
    assert s.psnr == pytest.approx(20.0, rel=1e-5)
    assert score(target, target, mask).psnr == math.inf


def test_masked_mse_rejects_bad_input():
    a = torch.zeros(1, 3, 4, 4)
    with pytest.raises(ValueError, match="empty"):
        masked_mse(a, a, torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="equal"):
        masked_mse(a, torch.zeros(1, 3, 4, 5), torch.ones(1, 1, 4, 4))
    with pytest.raises(ValueError, match="mask"):
        masked_mse(a, a, torch.ones(1, 3, 4, 4))


def test_light_metric_is_zero_error_for_identical_sh():
    light = torch.randn(1, 3, SH_COUNT, generator=torch.Generator().manual_seed(1))
    light[:, :, 0] = 3.0  # a positive ambient term keeps the probe's maximum positive
    s = light_score(light, light.clone())
    assert s.psnr == math.inf and s.rmse == 0.0


def test_light_probe_of_constant_radiance_is_that_radiance():
    # L(ω) = c·Y00 is constant c·0.2821; a white Lambertian surface reflects exactly L.
    light = torch.zeros(1, 3, SH_COUNT)
    light[:, :, 0] = torch.tensor([1.0, 2.0, 4.0])
    probe = light_probe(light, 32)
    _, inside = probe_normals(32)
    y00 = 0.5 / math.sqrt(math.pi)
    for c, k in enumerate((1.0, 2.0, 4.0)):
        assert torch.allclose(probe[0, c][inside], torch.full_like(probe[0, c][inside], k * y00), atol=1e-5)
    assert float(probe[0][:, ~inside].abs().max()) == 0.0


def test_light_metric_of_a_doubled_light():
    light = torch.zeros(1, 3, SH_COUNT)
    light[:, :, 0] = 1.0
    s = light_score(2 * light, light)   # normalized truth 1, estimate 2 → error 1
    assert s.rmse == pytest.approx(1.0, rel=1e-5)
    assert s.psnr == pytest.approx(0.0, abs=1e-4)


def test_channel_scale_recovers_known_scales():
    gen = torch.Generator().manual_seed(0)
    truth = torch.rand(1, 3, 8, 8, generator=gen)
    k = torch.tensor([0.5, 1.0, 2.0])
    s = channel_scale(truth / k[None, :, None, None], truth, torch.ones(1, 1, 8, 8))
    assert torch.allclose(s[0], k, rtol=1e-5)


def test_normal_angle_of_a_quarter_turn():
    n = torch.zeros(1, 3, 2, 2)
    n[:, 2] = 1
    m = torch.zeros(1, 3, 2, 2)
    m[:, 0] = 1
    assert normal_angle_deg(n, m, torch.ones(1, 1, 2, 2)) == pytest.approx(90.0, abs=1e-3)
    assert normal_angle_deg(n, n, torch.ones(1, 1, 2, 2)) == pytest.approx(0.0, abs=1e-2)


def test_resize_map_keeps_constants_and_sizes():
    x = torch.full((1, 3, 16, 16), 0.3)
    assert resize_map(x, 8).shape == (1, 3, 8, 8)
    assert torch.allclose(resize_map(x, 32), torch.full((1, 3, 32, 32), 0.3))


def _gt(size: int = 32) -> GroundTruth:
    gen = torch.Generator().manual_seed(2)
    n = torch.nn.functional.normalize(torch.randn(1, 3, size, size, generator=gen) * 0.2
                                      + torch.tensor([0, 0, 1.0])[None, :, None, None], dim=1)
    light = torch.zeros(1, 3, SH_COUNT)
    light[:, :, 0] = 2.0
    light[:, :, 2] = 0.5
    return GroundTruth(albedo=torch.rand(1, 3, size, size, generator=gen) * 0.6,
                       specular=torch.rand(1, 1, size, size, generator=gen), normal=n, light=light)


def test_compare_identical_maps_is_perfect_and_aligned_scale_is_one():
    gt = _gt()
    s = compare(gt.albedo, gt.specular, gt.normal, gt.light, gt)
    assert s.albedo.psnr == math.inf and s.specular.psnr == math.inf and s.light.psnr == math.inf
    assert s.normal.rmse < 1e-6
    assert s.albedo_scale == pytest.approx((1.0, 1.0, 1.0), rel=1e-5)


def test_compare_alignment_undoes_the_albedo_light_ambiguity():
    gt = _gt()
    k = torch.tensor([0.5, 0.8, 0.6])
    a = gt.albedo * k[None, :, None, None]
    light = gt.light / k[None, :, None]
    s = compare(a, gt.specular, gt.normal, light, gt)
    assert s.albedo.psnr < 30
    assert s.albedo_aligned.psnr > 60 and s.light_aligned.psnr > 60


def test_level_error_summary_is_the_log_of_the_overshoot():
    from facerefl.eval.synthetic import level_error_summary

    gt = _gt()
    scales = []
    for k in ([1.2, 1.0, 0.9], [1.2, 1.0, 1.1]):  # estimates 1.2x too bright in red, ...
        s = compare(gt.albedo * torch.tensor(k)[None, :, None, None], gt.specular, gt.normal, gt.light, gt)
        scales.append(s.albedo_scale)
    out = level_error_summary(scales)
    assert out["mean"] == pytest.approx([math.log(1.2), 0.0, 0.5 * (math.log(0.9) + math.log(1.1))], abs=1e-4)
    assert out["rms"][0] == pytest.approx(math.log(1.2), abs=1e-4) and out["rms"][2] > 0.09
    assert level_error_summary([]) == {}


def test_region_is_the_template_skin_mask():
    m = region_mask(64, torch.zeros(1))
    frac = float(m.mean())
    assert m.shape == (1, 1, 64, 64) and 0.1 < frac < 0.9


def test_features_score_sees_the_eyes_that_table1_leaves_out():
    from facerefl.eval.compare import features_mask

    size = 64
    feats, skin = features_mask(size, torch.zeros(1)), region_mask(size, torch.zeros(1))
    assert float((feats * skin).sum()) == 0 and 0.01 < float(feats.mean()) < 0.1
    eyes = torch.from_numpy(eyes_uv_coverage(size) > 0.5)
    assert bool(feats[0, 0][eyes].all())  # the eye openings are features
    gt = _gt(size)
    wrong_eyes = torch.where(eyes, gt.albedo.new_tensor(0.9), gt.albedo)
    s = compare(wrong_eyes, gt.specular, gt.normal, gt.light, gt)
    assert s.albedo.psnr == math.inf  # Table 1's region does not see the eyes ...
    assert s.albedo_features.psnr < 20  # ... the features score does
    assert compare(gt.albedo, gt.specular, gt.normal, gt.light, gt).albedo_features.psnr == math.inf
