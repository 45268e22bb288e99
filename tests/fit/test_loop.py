import dataclasses
import math

import pytest
import torch

import facerefl.fit.loop as loop
from facerefl.errors import InputError
from facerefl.fit.loop import FitProblem, FitSettings, fit_latents, masked_psnr
from facerefl.fit.pipeline import fit_geometry, image_metrics, problem_from_geometry
from facerefl.models.components.level import eyes_fixed, skin_level
from facerefl.render.maps import ReflectanceMaps
from facerefl.render.sh import sh_relative_change


def paper(**kw) -> FitSettings:
    """The paper's loop: every code free, no light prior, constant step, enhancers in every
    step, no gauge, no delighting."""
    return FitSettings(**{"optimize": loop.LATENTS, "light_prior": 0.0, "albedo_gauge": False, "delight": None,
                          "lr_schedule": "constant", "enhanced_iterations": None, "detail_max_size": 0, **kw})


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
    res = fit_latents(tiny_nets, problem, paper(iterations=12))
    assert len(res.losses) == 13
    assert res.best_loss == min(res.losses)
    assert res.best_loss < 0.8 * res.initial_loss
    assert res.maps.albedo.shape == (1, 3, 64, 64)
    assert res.light.shape == (1, 3, 9)
    # The returned maps really are those of the best iterate.
    again = loop._loss(loop.render_maps(problem, res.maps, res.light, FitSettings()), problem)
    assert float(again) == pytest.approx(res.best_loss, rel=1e-4)


def test_only_selected_latents_move(tiny_nets, problem):
    res = fit_latents(tiny_nets, problem, paper(iterations=3, optimize=("light",)))
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
    res = fit_latents(tiny_nets, problem, paper(iterations=6))
    assert res.restorations == 1
    assert all(math.isfinite(v) for v in res.losses)
    assert "non-finite" in res.messages[0]


def test_early_stop(tiny_nets, problem):
    res = fit_latents(tiny_nets, problem, paper(iterations=50, lr=1e-9, early_stop=True, patience=3))
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
    pf = fit_geometry(astro_geometry, tiny_nets, paper(iterations=8))
    m = pf.metrics
    assert m["psnr_final"] > m["psnr_initial"]
    assert m["psnr_gain"] == pytest.approx(m["psnr_final"] - m["psnr_initial"])
    assert m["iterations"] == 8
    h, w = astro_geometry.camera.height, astro_geometry.camera.width
    assert pf.rendering.shape == (3, h, w) and pf.face_mask.shape == (1, h, w)
    assert float((pf.rendering * (1 - pf.coverage)).abs().max()) == 0.0
    assert set(pf.timings) >= {"prepare", "encoding", "optimization", "delighting"}


def test_without_enhancer_renders_decoder_outputs(tiny_nets, problem):
    res = fit_latents(tiny_nets, problem, paper(iterations=2, enhance=False))
    assert res.maps.albedo.shape == (1, 3, 32, 32)  # decoder size, not the enhancer's 64


def test_albedo_refinement_lowers_the_loss_below_the_latent_phase(tiny_nets, problem):
    res = fit_latents(tiny_nets, problem, paper(iterations=3, refine_iterations=15, refine_size=64))
    assert res.latent_steps == 4 and len(res.losses) == 4 + 15
    assert res.best_loss < res.latent_best_loss
    assert res.maps.albedo.shape == (1, 3, 64, 64)
    assert float(res.maps.albedo.min()) >= 0 and float(res.maps.albedo.max()) <= 1
    # The latent-phase maps are kept for comparison.
    assert res.latent_maps.albedo.shape == (1, 3, 64, 64)
    again = loop._loss(loop.render_maps(problem, res.maps, res.light, FitSettings()), problem)
    assert float(again) == pytest.approx(res.best_loss, rel=1e-4)


class UniformAlbedoNets:
    """Stand-in for :class:`ReflectanceNetworks` with a uniform albedo ``sigmoid(z_a)`` per
    channel, a fixed specular map, flat normals and an SH light: the photo constrains only
    albedo × light, so the fit is free to slide along that scale."""

    def __init__(self, size: int = 16, albedo=(0.6, 0.45, 0.4), light_dc: float = 0.5) -> None:
        self.size = size
        self.z_a = torch.logit(torch.tensor([albedo]))
        self.light = torch.zeros(1, 3, 9)
        self.light[:, :, 0] = light_dc
        self.light[:, :, 2] = 0.3 * light_dc

    def encode(self, texture):
        from facerefl.models.networks import BranchCode, LatentCode

        return LatentCode(BranchCode((), self.z_a.clone()), BranchCode((), torch.zeros(1, 1)),
                          BranchCode((), torch.zeros(1, 1)), light=self.light.clone())

    def reflectance(self, code, texture):
        s = self.size
        normal = torch.zeros(1, 3, s, s)
        normal[:, 2] = 1
        albedo = torch.sigmoid(code.albedo.z)[:, :, None, None].expand(1, 3, s, s)
        return ReflectanceMaps(albedo, torch.full((1, 1, s, s), 0.2), normal)

    def decode(self, code):
        return self.reflectance(code, None)

    def albedo_level(self, texture):
        return None  # no albedo-level regressor

    def specular_mean(self, texture):
        return None  # no specular-level regressor


def _scale_drift(res, problem) -> float:
    """Largest per-channel |log| ratio of the returned to the encoders' skin-mean albedo."""
    m0 = loop.skin_mean(res.initial_maps.albedo, problem.texture)
    m1 = loop.skin_mean(res.maps.albedo, problem.texture)
    return float((m1 / m0).log().abs().max())


def test_gauge_moves_the_albedo_scale_into_the_light_without_changing_the_diffuse_image(problem):
    torch.manual_seed(0)
    albedo = torch.rand(1, 3, 32, 32) * 0.6
    normal = torch.nn.functional.normalize(torch.randn(1, 3, 32, 32) * 0.2 + torch.tensor([0.0, 0.0, 1.0])[:, None, None], dim=1)
    no_spec = torch.zeros(1, 1, 32, 32)
    light = torch.randn(1, 3, 9) * 0.3
    light[:, :, 0] = torch.tensor([1.5, 1.2, 1.0])
    maps = ReflectanceMaps(albedo, no_spec, normal)
    target = torch.tensor([[0.3, 0.2, 0.15]])
    gauged, light_g, scale = loop.gauge_albedo(maps, light, target, problem.texture)
    assert torch.allclose(loop.skin_mean(gauged.albedo, problem.texture), target, rtol=1e-5)
    assert torch.allclose(gauged.albedo, albedo * scale[..., None, None])
    settings = FitSettings()
    before = loop.render_maps(problem, maps, light, settings)
    after = loop.render_maps(problem, gauged, light_g, settings)
    assert torch.allclose(before, after, atol=1e-5)
    assert torch.equal(gauged.normal, normal) and torch.equal(gauged.specular, no_spec)


def _gauge_case(spec: float):
    """Maps with a uniform specular map under a grey ambient light."""
    torch.manual_seed(1)
    albedo = 0.3 + torch.rand(1, 3, 32, 32) * 0.4
    normal = torch.nn.functional.normalize(torch.randn(1, 3, 32, 32) * 0.2 + torch.tensor([0.0, 0.0, 1.0])[:, None, None], dim=1)
    maps = ReflectanceMaps(albedo, torch.full((1, 1, 32, 32), spec), normal)
    light = torch.zeros(1, 3, 9)
    light[:, :, 0] = 0.8
    return maps, light


def test_guarded_gauge_is_the_whole_gauge_while_the_rendering_allows_it(problem):
    maps, light = _gauge_case(spec=0.0)
    m = loop.skin_mean(maps.albedo, problem.texture)
    settings = FitSettings()
    whole = loop.gauge_albedo(maps, light, m / 5, problem.texture)
    guarded = loop.guarded_gauge(problem, maps, light, m / 5, settings)
    assert torch.equal(guarded[2], whole[2])  # no specular: the diffuse image is kept exactly


def test_guarded_gauge_stops_where_the_specular_term_would_swamp_the_rendering(problem):
    """A target 20x darker than the fit: the whole gauge lights the specular term 20x
    brighter; the guard applies only the part that keeps the loss within the tolerance."""
    maps, light = _gauge_case(spec=0.5)
    m = loop.skin_mean(maps.albedo, problem.texture)
    settings = FitSettings(gauge_tolerance=0.1)
    problem_ = dataclasses.replace(problem, target=loop.render_maps(problem, maps, light, settings) * 0.9)
    before = float(loop.fit_render_loss(problem_, maps, light, settings))
    whole = loop.gauge_albedo(maps, light, m / 20, problem.texture)
    assert float(loop.fit_render_loss(problem_, whole[0], whole[1], settings)) > before + 1e-3
    g_maps, g_light, scale = loop.guarded_gauge(problem_, maps, light, m / 20, settings)
    after = float(loop.fit_render_loss(problem_, g_maps, g_light, settings))
    assert after <= before * 1.1 + 1e-9
    assert bool((scale < 1).all()) or bool((scale == 1).all())  # moved toward the target, or not at all
    assert bool((scale > 1 / 20 * 1.01).all())  # not the whole way
    with pytest.raises(InputError, match="gauge_tolerance"):
        FitSettings(gauge_tolerance=-0.5)


def test_gauge_target_blends_the_encoders_and_the_regressors_levels(problem):
    maps, light = _gauge_case(spec=0.0)
    start = ReflectanceMaps(maps.albedo * 0.5, maps.specular, maps.normal)
    light0 = light * 2.0  # the regressor's light: twice the fitted one
    enc = loop.skin_mean(start.albedo, problem.texture)
    fitted = loop.skin_mean(maps.albedo, problem.texture)
    assert torch.equal(loop.gauge_target(maps, light, start, light0, problem.texture, 0.0), enc)
    implied = loop.gauge_target(maps, light, start, light0, problem.texture, 1.0)
    torch.testing.assert_close(implied, fitted / 2)  # the same image under twice the light
    half = loop.gauge_target(maps, light, start, light0, problem.texture, 0.5)
    torch.testing.assert_close(half, (enc * fitted / 2).sqrt())
    prior = torch.tensor([[0.3, 0.2, 0.1]])  # a level regressor's: it replaces the encoders'
    assert torch.equal(loop.gauge_target(maps, light, start, light0, problem.texture, 0.0, prior), prior)
    torch.testing.assert_close(loop.gauge_target(maps, light, start, light0, problem.texture, 0.5, prior),
                               (prior * fitted / 2).sqrt())
    with pytest.raises(InputError, match="gauge_light_weight"):
        FitSettings(gauge_light_weight=1.5)


def test_without_the_gauge_the_fit_is_the_plain_loop(problem):
    """Gauge off is the paper's loop: a hand-written Adam loop on the image loss gives the
    same losses, and the returned albedo and light are those of the best iterate."""
    nets, n = UniformAlbedoNets(), 6
    res = fit_latents(nets, problem, paper(iterations=n, albedo_gauge=False))
    assert res.gauge_scale is None
    code0 = nets.encode(problem.texture)
    z_a, light = code0.albedo.z.clone().requires_grad_(), code0.light.clone().requires_grad_()
    opt = torch.optim.Adam([z_a, light], lr=0.1, betas=(0.9, 0.999))
    expected, states = [], []
    for it in range(n + 1):
        maps = nets.reflectance(code0.with_z(albedo=z_a), problem.texture)
        loss = loop._loss(loop.render_maps(problem, maps, light, FitSettings()), problem)
        expected.append(float(loss.detach()))
        states.append((maps.albedo.detach().clone(), light.detach().clone()))
        if it < n:
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert res.losses == pytest.approx(expected, rel=1e-6)
    albedo_b, light_b = states[res.best_iteration]
    assert torch.allclose(res.maps.albedo, albedo_b) and torch.allclose(res.light, light_b)


def test_gauge_undoes_the_drift_along_albedo_times_light(problem):
    """The photo is silent along the albedo × light scale: the plain fit drifts; with the
    gauge the albedo keeps the encoders' scale, the light takes it, and the photo is
    matched as well (only the specular term sees the rescaled light)."""
    nets = UniformAlbedoNets()
    free = fit_latents(nets, problem, paper(iterations=40))
    held = fit_latents(nets, problem, paper(iterations=40, albedo_gauge=True))
    assert _scale_drift(free, problem) > 0.15
    assert _scale_drift(held, problem) < 1e-4
    assert held.losses == free.losses  # the optimization itself is the paper's
    # The albedo and light moved together along the ambiguity: the gauge factors undo the drift.
    m_free = loop.skin_mean(free.maps.albedo, problem.texture)
    assert torch.allclose(held.gauge_scale * m_free, loop.skin_mean(held.initial_maps.albedo, problem.texture))
    assert torch.allclose(held.light, free.light / held.gauge_scale[..., None])
    rendered = loop._loss(loop.render_maps(problem, held.maps, held.light, FitSettings()), problem)
    assert float(rendered) == pytest.approx(free.best_loss, rel=0.05)


class LevelNets(UniformAlbedoNets):
    """:class:`UniformAlbedoNets` with an albedo-level regressor that reports ``level``."""

    def __init__(self, level=(0.3, 0.2, 0.1), **kw) -> None:
        super().__init__(**kw)
        self.level = torch.tensor([level])

    def albedo_level(self, texture):
        return self.level.clone()


class SpecularLevelNets(LevelNets):
    """:class:`LevelNets` whose specular-level regressor reports a mean of 0.35."""

    def specular_mean(self, texture):
        return torch.tensor([[0.35]])


def test_gauge_sets_the_specular_regressors_mean_unless_turned_off(problem):
    nets = SpecularLevelNets()
    on = fit_latents(nets, problem, paper(iterations=4, albedo_gauge=True, gauge_tolerance=1e6))
    torch.testing.assert_close(skin_level(on.maps.specular, problem.texture), torch.tensor([[0.35]]))
    torch.testing.assert_close(on.latent_maps.specular, on.maps.specular)
    # the eyes keep their own shine (the decoded 0.2); the rest carries the new level
    fixed = eyes_fixed(on.latent_maps.specular)
    eyes = fixed > 0
    assert int(eyes.sum()) > 0
    scale = float(on.latent_maps.specular[0, 0][~eyes].mean()) / 0.2
    assert scale > 1.5
    torch.testing.assert_close(on.latent_maps.specular[0, 0][eyes], 0.2 * (1 + (scale - 1) * (1 - fixed[eyes])))
    off = fit_latents(nets, problem, paper(iterations=4, albedo_gauge=True, gauge_tolerance=1e6,
                                           specular_gauge=False))
    torch.testing.assert_close(off.maps.specular, torch.full_like(off.maps.specular, 0.2))
    no_gauge = fit_latents(nets, problem, paper(iterations=4, albedo_gauge=False))
    torch.testing.assert_close(no_gauge.maps.specular, torch.full_like(no_gauge.maps.specular, 0.2))


def test_gauge_takes_the_level_regressors_level_when_asked(problem):
    """fit.gauge_level=regressor (and auto, with a regressor): the gauged albedo's skin
    mean is the regressor's level, with the same loss history as the encoders' gauge;
    networks without a regressor are a clear user error for "regressor", and "auto" then
    takes the encoders' level."""
    nets = LevelNets()
    enc = fit_latents(nets, problem, paper(iterations=10, albedo_gauge=True, gauge_tolerance=1e6,
                                           gauge_level="encoders"))
    reg = fit_latents(nets, problem, paper(iterations=10, albedo_gauge=True, gauge_tolerance=1e6,
                                           gauge_level="regressor"))
    auto = fit_latents(nets, problem, paper(iterations=10, albedo_gauge=True, gauge_tolerance=1e6))
    assert reg.losses == enc.losses and torch.equal(auto.maps.albedo, reg.maps.albedo)
    torch.testing.assert_close(loop.skin_mean(reg.maps.albedo, problem.texture), nets.level)
    torch.testing.assert_close(loop.skin_mean(enc.maps.albedo, problem.texture),
                               loop.skin_mean(enc.initial_maps.albedo, problem.texture))
    with pytest.raises(InputError, match="level regressor"):
        fit_latents(UniformAlbedoNets(), problem, paper(iterations=2, albedo_gauge=True, gauge_level="regressor"))
    fit_latents(UniformAlbedoNets(), problem, paper(iterations=2, albedo_gauge=False, gauge_level="regressor"))
    plain = UniformAlbedoNets()  # "auto" without a regressor: the encoders' level
    auto = fit_latents(plain, problem, paper(iterations=10, albedo_gauge=True, gauge_tolerance=1e6))
    torch.testing.assert_close(loop.skin_mean(auto.maps.albedo, problem.texture),
                               loop.skin_mean(auto.initial_maps.albedo, problem.texture))
    with pytest.raises(InputError, match="gauge_level"):
        FitSettings(gauge_level="photo")


class DarkDecoderNets(UniformAlbedoNets):
    """Decoder outputs 20x darker than the enhanced maps, as cpu_x10's are on Grace Hopper."""

    def decode(self, code):
        m = self.reflectance(code, None)
        return ReflectanceMaps(m.albedo / 20, m.specular, m.normal)


def test_a_decoder_far_from_the_enhanced_level_runs_the_papers_loop(problem):
    """When the albedo enhancer changes the encoders' start by more than fit.coarse_max_gain,
    the coarse phase is skipped: every step renders the enhanced maps, as the paper's loop."""
    nets = DarkDecoderNets()
    code = nets.encode(problem.texture)
    coarse, fine = nets.decode(code).albedo, nets.reflectance(code, problem.texture).albedo
    assert loop.coarse_gain(coarse, fine, problem.texture) == pytest.approx(20, rel=1e-4)
    s = dict(iterations=8, albedo_gauge=False, delight=None, detail_max_size=0)
    guarded = fit_latents(nets, problem, FitSettings(**s, enhanced_iterations=3, coarse_max_gain=2.0))
    papers = fit_latents(nets, problem, FitSettings(**s, enhanced_iterations=None))
    coarse = fit_latents(nets, problem, FitSettings(**s, enhanced_iterations=3, coarse_max_gain=0.0))
    assert guarded.losses == papers.losses and any("coarse_max_gain" in m for m in guarded.messages)
    assert coarse.losses != papers.losses and not coarse.messages
    assert fit_latents(UniformAlbedoNets(), problem, FitSettings(**s, enhanced_iterations=3)).messages == []
    with pytest.raises(InputError, match="coarse_max_gain"):
        FitSettings(coarse_max_gain=0.5)


def test_gauge_leaves_a_kept_refinement_as_refined(problem):
    """The refinement phase starts from the fitted scale and its result is not gauged; when
    the phase's result is not kept, the latent result is gauged as usual."""
    nets = UniformAlbedoNets()
    s = dict(iterations=5, refine_iterations=20, refine_size=32, refine_lr=0.05, refine_light_lr=0.05)
    free = fit_latents(nets, problem, paper(**s))
    held = fit_latents(nets, problem, paper(**s, albedo_gauge=True))
    assert held.best_iteration >= held.latent_steps  # the refined maps were kept
    assert held.gauge_scale is None and held.losses == free.losses
    assert torch.equal(held.maps.albedo, free.maps.albedo) and torch.equal(held.light, free.light)
    # One refinement evaluation is the latent result itself (δ = 0): not better, not kept.
    lost = fit_latents(nets, problem, paper(**{**s, "refine_iterations": 1}, albedo_gauge=True))
    assert lost.best_iteration < lost.latent_steps and lost.gauge_scale is not None
    assert _scale_drift(lost, problem) < 1e-4 and lost.latent_maps is lost.maps


def test_coarse_phase_then_enhanced_phase(tiny_nets, problem):
    """Decoder-only steps first, then enhanced ones; the best state is one of the enhanced
    phase, and its maps are the enhanced maps that give its loss."""
    res = fit_latents(tiny_nets, problem, paper(iterations=10, enhanced_iterations=4))
    assert len(res.losses) == 11 and res.adam_steps == 10
    assert res.best_iteration >= 6
    assert res.best_loss == min(res.losses[6:])
    assert res.maps.albedo.shape == (1, 3, 64, 64) and res.initial_maps.albedo.shape == (1, 3, 64, 64)
    again = loop._loss(loop.render_maps(problem, res.maps, res.light, FitSettings()), problem)
    assert float(again) == pytest.approx(res.best_loss, rel=1e-4)


def test_enhancers_once_after_the_coarse_phase(tiny_nets, problem, monkeypatch):
    """enhanced_iterations=0: every step renders D alone, then the best coarse
    code is enhanced once and that state's loss is appended."""
    calls = {"enhance": 0}
    real = type(tiny_nets).enhance

    def counting(self, *a, **k):
        calls["enhance"] += 1
        return real(self, *a, **k)

    monkeypatch.setattr(type(tiny_nets), "enhance", counting)
    res = fit_latents(tiny_nets, problem, paper(iterations=8, enhanced_iterations=0))
    assert calls["enhance"] == 2  # the encoders' start (initial maps) and the result
    assert len(res.losses) == 10 and res.adam_steps == 8 and res.best_iteration == 9
    assert res.maps.albedo.shape == (1, 3, 64, 64)
    again = loop._loss(loop.render_maps(problem, res.maps, res.light, FitSettings()), problem)
    assert float(again) == pytest.approx(res.losses[-1], rel=1e-4)
    # the coarse phase itself lowered its own loss
    assert min(res.losses[1:9]) < res.losses[0]


def test_early_stop_of_the_coarse_phase_moves_on_to_the_enhanced_phase(tiny_nets, problem):
    res = fit_latents(tiny_nets, problem, paper(iterations=30, enhanced_iterations=5, lr=1e-9,
                                                early_stop=True, patience=2))
    assert res.maps.albedo.shape == (1, 3, 64, 64)
    assert res.best_iteration >= 3 and len(res.losses) < 12


def test_cosine_schedule_steps():
    s = FitSettings(iterations=80, lr=0.1, lr_schedule="cosine", lr_end=0.05)
    lrs = [s.lr_at(i) for i in range(81)]
    assert lrs[0] == pytest.approx(0.1) and lrs[-1] == pytest.approx(0.005)
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert FitSettings(lr=0.1).lr_at(79) == 0.1
    with pytest.raises(InputError, match="lr_schedule"):
        FitSettings(lr_schedule="linear")
    with pytest.raises(InputError, match="lr_end"):
        FitSettings(lr_end=1.5)


def test_cosine_schedule_reaches_the_optimizer(tiny_nets, problem, monkeypatch):
    seen = []
    real = loop.Adam.step

    def spy(self, *a, **k):
        seen.append(self.param_groups[0]["lr"])
        return real(self, *a, **k)

    monkeypatch.setattr(loop.Adam, "step", spy)
    fit_latents(tiny_nets, problem, paper(iterations=4, lr_schedule="cosine", lr_end=0.0))
    assert seen == pytest.approx([0.1 * 0.5 * (1 + math.cos(math.pi * i / 4)) for i in range(4)])


def test_detail_maps_follow_the_face():
    normal = torch.nn.functional.normalize(torch.randn(1, 3, 128, 128), dim=1)
    smooth = torch.nn.functional.interpolate(torch.rand(1, 1, 16, 16), size=128, mode="bilinear")
    maps = ReflectanceMaps(torch.rand(1, 3, 256, 256), smooth, normal)
    assert loop.detail_maps(maps, 5e5, 0) is maps
    assert loop.detail_maps(maps, 2000.0, 512) is maps  # few face pixels: the network size
    mid, big = loop.detail_maps(maps, 7000.0, 512), loop.detail_maps(maps, 5e5, 512)
    assert mid.specular.shape[-1] == mid.normal.shape[-1] == 256
    assert big.specular.shape[-1] == big.normal.shape[-1] == 512
    assert big.albedo is maps.albedo
    assert torch.allclose(big.normal.norm(dim=1), torch.ones(1), atol=1e-5)
    # bilinear: shrinking back gives the network's map again, nearly
    back = torch.nn.functional.interpolate(big.specular, size=128, mode="bilinear", antialias=True)
    assert float((back - maps.specular).abs().mean()) < 0.01


def test_light_prior_holds_the_light_near_the_regressors(tiny_nets, problem):
    code0 = tiny_nets.encode(problem.texture)
    moved = {}
    for w in (0.0, 10.0):
        res = fit_latents(tiny_nets, problem, paper(iterations=10, optimize=("light",), light_prior=w))
        moved[w] = float(sh_relative_change(res.light, code0.light))
    assert moved[0.0] > 0.01
    assert moved[10.0] < 0.3 * moved[0.0]
    with pytest.raises(InputError, match="light_prior"):
        FitSettings(light_prior=-1.0)
