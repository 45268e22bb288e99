"""The lighting-consistency benchmark: its metrics, its lightings, and a small end-to-end run."""

import json
import math

import numpy as np
import pytest
import torch

from facerefl.data.lighting import LightPrior, LightSettings, load_table
from facerefl.eval.consistency import (BENCHMARK_LIGHTINGS, Lighting, NamedLight, face_consistency,
                                       luminance_cov, pairwise_psnr)
from tests.eval.conftest import SMALL, compose_eval


def _mask(size):
    return torch.ones(1, 1, size, size)


def test_pairwise_psnr_raw_and_gain_aligned():
    torch.manual_seed(0)
    a = torch.rand(1, 3, 16, 16) * 0.5 + 0.1
    b = a * torch.tensor([1.3, 1.0, 0.8]).view(1, 3, 1, 1)  # the same pattern, another gain
    raw = pairwise_psnr([a, b], _mask(16), align=False)
    aligned = pairwise_psnr([a, b], _mask(16), align=True)
    assert len(raw) == 1 and raw[0] < 25
    assert aligned[0] > 60  # a per-channel gain explains all of it
    assert pairwise_psnr([a, a, a], _mask(16), align=False) == [math.inf] * 3


def test_luminance_cov_is_zero_for_equal_maps_and_grows_with_spread():
    a = torch.full((1, 3, 8, 8), 0.4)
    assert luminance_cov([a, a], _mask(8)) == pytest.approx(0.0, abs=1e-7)
    assert luminance_cov([a, a * 1.5], _mask(8)) == pytest.approx(0.5 * 0.2 / 0.5 * math.sqrt(2), rel=1e-4)


def test_face_consistency_reports_every_number():
    gt = torch.full((1, 3, 16, 16), 0.3)
    out = face_consistency([gt, gt * 1.1, gt * 0.9], [30.0, 28.0, 27.0], gt)
    assert out["ok"] == 3 and out["psnr_vs_truth_mean"] == pytest.approx(85 / 3)
    assert out["pairwise_psnr_aligned_mean"] > out["pairwise_psnr_mean"]
    assert out["luminance_cov"] > 0


def test_named_lightings_are_the_maps_turned_tinted_and_dimmed():
    prior = LightPrior(load_table(), LightSettings())
    names = {lt.name for lt in BENCHMARK_LIGHTINGS}
    assert len(BENCHMARK_LIGHTINGS) >= 8 and len(names) == len(BENCHMARK_LIGHTINGS)
    base = NamedLight(prior, Lighting("a", "hall")).sample(np.random.default_rng(0))
    dim = NamedLight(prior, Lighting("b", "hall", intensity=0.25)).sample(np.random.default_rng(1))
    assert torch.allclose(dim.sh, base.sh * 0.25, atol=1e-5)  # deterministic, and 4x dimmer
    green = NamedLight(prior, Lighting("c", "hall", tint=(0.9, 1.25, 0.7))).sample(np.random.default_rng(0))
    assert green.gain[1] > green.gain[0] > green.gain[2]
    turned = NamedLight(prior, Lighting("d", "hall", yaw_deg=90.0)).sample(np.random.default_rng(0))
    assert not torch.allclose(turned.sh[:, 1:4], base.sh[:, 1:4])  # the first band turns
    assert torch.allclose(turned.sh[:, 0], base.sh[:, 0])  # the level does not


def test_benchmark_end_to_end_small(tiny_eval_weights, tmp_path):
    """One face under two lightings (SH renderer, tiny networks): both pipelines scored."""
    from facerefl.tasks.evaluate import evaluate

    out = tmp_path / "out"
    cfg = compose_eval([f"weights={tiny_eval_weights}", f"output_dir={out}", *SMALL, "consistency.enabled=true", f"consistency.cache={tmp_path / 'renders'}",
                        "consistency.faces=1", "consistency.lightings=[studio,dim_hall]", "consistency.renderer=sh",
                        "consistency.image=224", "consistency.texture=64", "consistency.detail=32",
                        "consistency.variants={flat:{prior_sigma:0.5}}"])
    res = evaluate(cfg)
    assert res["fitted"] == 2 and res["examples"] == 2
    for name in ("paper", "default", "flat"):
        s = res["summary"][name]
        assert math.isfinite(s["pairwise_psnr_mean"]) and math.isfinite(s["psnr_vs_truth_mean"])
        assert s["luminance_cov"] >= 0
    assert res["summary"]["default"]["recon_psnr"] > res["summary"]["paper"]["recon_psnr"]
    doc = json.loads((out / "consistency.json").read_text())
    assert set(doc["summary"]) == {"paper", "default", "flat"}
    assert (out / "consistency_sheet.png").is_file() and "latent phase (no delighting)" in (out / "consistency.md").read_text()
