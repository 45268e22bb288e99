import math

import pytest
import torch

import facerefl.fit.loop as loop
from facerefl.errors import InputError
from facerefl.fit.loop import FitProblem, FitSettings, fit_latents, masked_psnr
from facerefl.fit.pipeline import fit_geometry, image_metrics, problem_from_geometry


@pytest.fixture(scope="module")
def problem(astro_geometry):
    return problem_from_geometry(astro_geometry, roughness=0.6)


def test_problem_face_region_is_inside_coverage_and_skin(problem, astro_geometry):
    w = problem.weight
    covered = (problem.prepared.index < problem.prepared.height * problem.prepared.width)[..., None]
    assert float(w.sum()) > 2000  # the astronaut's face covers thousands of pixels
    assert bool((w <= covered.float()).all())
    # Eyes are not skin: the region is strictly smaller than the covered set.
    assert float(w.sum()) < float(covered.sum())
    # Targets are the photo's sRGB colours.
    assert 0.0 <= float(problem.target.min()) and float(problem.target.max()) <= 1.0


def test_loss_decreases_and_best_iterate_is_returned(tiny_nets, problem):
    res = fit_latents(tiny_nets, problem, FitSettings(iterations=12))
    assert len(res.losses) == 13
    assert res.best_loss == min(res.losses)
    assert res.best_loss < 0.8 * res.initial_loss
    assert res.maps.albedo.shape == (1, 3, 64, 64)
    assert res.light.shape == (1, 3, 9)
    # The returned maps really are those of the best iterate.
    again = loop._loss(loop.render_maps(problem, res.maps, res.light, FitSettings()), problem)
    assert float(again) == pytest.approx(res.best_loss, rel=1e-4)


def test_only_selected_latents_move(tiny_nets, problem):
    res = fit_latents(tiny_nets, problem, FitSettings(iterations=3, optimize=("light",)))
    code0 = tiny_nets.encode(problem.texture)
    assert torch.equal(res.code.albedo.z, code0.albedo.z)
    assert not torch.equal(res.light, code0.light)


def test_non_finite_loss_restores_last_good_state(tiny_nets, problem, monkeypatch):
    real = loop.render_maps
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        out = real(*a, **k)
        return out * float("nan") if calls["n"] == 4 else out

    monkeypatch.setattr(loop, "render_maps", flaky)
    res = fit_latents(tiny_nets, problem, FitSettings(iterations=6))
    assert res.restorations == 1
    assert all(math.isfinite(v) for v in res.losses)
    assert "non-finite" in res.messages[0]


def test_early_stop(tiny_nets, problem):
    res = fit_latents(tiny_nets, problem, FitSettings(iterations=50, lr=1e-9, early_stop=True, patience=3))
    assert res.stopped_early and len(res.losses) < 10


def test_bad_settings_and_problems_raise(problem):
    with pytest.raises(InputError, match="lr"):
        FitSettings(lr=0)
    with pytest.raises(InputError, match="optimize"):
        FitSettings(optimize=("albedo", "hair"))
    with pytest.raises(InputError, match="spec_model"):
        FitSettings(spec_model="phong")
    with pytest.raises(ValueError, match="target"):
        FitProblem(problem.texture, problem.prepared, problem.target[:, :5], problem.weight)
    with pytest.raises(ValueError, match="empty"):
        FitProblem(problem.texture, problem.prepared, problem.target, problem.weight * 0)


def test_metrics_are_consistent():
    x = torch.rand(3, 16, 16)
    m = torch.ones(1, 16, 16)
    same = image_metrics(x, x, m)
    assert same["psnr"] == float("inf") and same["ssim"] == pytest.approx(1.0, abs=1e-4)
    noisy = image_metrics((x + 0.1).clamp(0, 1), x, m)
    assert 15 < noisy["psnr"] < 30 and noisy["ssim"] < 0.99
    assert masked_psnr(torch.full((1, 4, 3), 0.5), torch.full((1, 4, 3), 0.6), torch.ones(1, 4, 1)) == pytest.approx(20.0)


def test_fit_geometry_reports_before_and_after(tiny_nets, astro_geometry):
    pf = fit_geometry(astro_geometry, tiny_nets, FitSettings(iterations=8))
    m = pf.metrics
    assert m["psnr_final"] > m["psnr_initial"]
    assert m["psnr_gain"] == pytest.approx(m["psnr_final"] - m["psnr_initial"])
    assert m["iterations"] == 8
    h, w = astro_geometry.camera.height, astro_geometry.camera.width
    assert pf.rendering.shape == (3, h, w) and pf.face_mask.shape == (1, h, w)
    assert float((pf.rendering * (1 - pf.coverage)).abs().max()) == 0.0
    assert set(pf.timings) >= {"prepare", "encoding", "optimization"}


def test_without_enhancer_renders_decoder_outputs(tiny_nets, problem):
    res = fit_latents(tiny_nets, problem, FitSettings(iterations=2, enhance=False))
    assert res.maps.albedo.shape == (1, 3, 32, 32)  # decoder size, not the enhancer's 64


def test_albedo_refinement_lowers_the_loss_below_the_latent_phase(tiny_nets, problem):
    res = fit_latents(tiny_nets, problem, FitSettings(iterations=3, refine_iterations=15, refine_size=64))
    assert res.latent_steps == 4 and len(res.losses) == 4 + 15
    assert res.best_loss < res.latent_best_loss
    assert res.maps.albedo.shape == (1, 3, 64, 64)
    assert float(res.maps.albedo.min()) >= 0 and float(res.maps.albedo.max()) <= 1
    # The latent-phase maps are kept for comparison.
    assert res.latent_maps.albedo.shape == (1, 3, 64, 64)
    again = loop._loss(loop.render_maps(problem, res.maps, res.light, FitSettings()), problem)
    assert float(again) == pytest.approx(res.best_loss, rel=1e-4)
