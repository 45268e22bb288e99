"""The delighting: detail from the photo into the albedo, its lighting into the shading residual."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from facerefl.data.skin import skin_albedo
from facerefl.errors import InputError
from facerefl.fit.delight import (SKIN_RANGE, DelightSettings, _layout_masks, albedo_size, cap_eye_specular, delight,
                                  eye_specular_cap, normalized_blur, project_to_skin, skin_range_violations,
                                  splat_to_uv)
from facerefl.geometry.template import eyes_uv_coverage
from facerefl.fit.loop import FitSettings, fit_latents, masked_psnr, render_maps
from facerefl.fit.pipeline import problem_from_geometry
from facerefl.render.color import linear_to_srgb
from facerefl.render.maps import ReflectanceMaps
from facerefl.render.shading import shade_prepared

SIZE = 128


@pytest.fixture(scope="module")
def problem(astro_geometry):
    return problem_from_geometry(astro_geometry, roughness=0.6)


def _uv_grid(size):
    v, u = torch.meshgrid((torch.arange(size) + 0.5) / size, (torch.arange(size) + 0.5) / size, indexing="ij")
    return u, 1 - v  # row 0 at v = 1


@pytest.fixture(scope="module")
def scene(problem):
    """A photo rendered from known maps, then darkened by a slow left-to-right shading ramp
    (a light the SH model cannot express): ``(problem, true albedo, prior maps, light, ramp)``."""
    skin, _, _, _ = _layout_masks(SIZE, None, torch.float32)
    u, v = _uv_grid(SIZE)
    base = torch.tensor([0.55, 0.38, 0.30]).view(1, 3, 1, 1)
    pattern = torch.exp(0.25 * torch.sin(2 * math.pi * u * 12) * torch.sin(2 * math.pi * v * 12))[None, None]
    true = (base * pattern).expand(1, 3, SIZE, SIZE).clone()
    eyes = (skin < 0.5) & (v[None, None] > 0.45) & (v[None, None] < 0.75)  # eyes and brows: not skin
    true = torch.where(eyes.expand_as(true), torch.tensor([0.05, 0.04, 0.03]).view(1, 3, 1, 1), true)
    _, lips, _, _ = _layout_masks(SIZE, None, torch.float32)
    true = torch.where((lips > 0.5).expand_as(true), torch.tensor([0.45, 0.12, 0.13]).view(1, 3, 1, 1), true)
    spec = torch.full((1, 1, 32, 32), 0.3)
    normal = torch.zeros(1, 3, 32, 32)
    normal[:, 2] = 1
    light = torch.zeros(1, 3, 9)
    light[:, :, 0] = 2.5
    light[:, :, 2] = 0.8
    sh = shade_prepared(problem.prepared, true, spec, light, normal, to_image=False)
    px = problem.prepared.index[0] % problem.prepared.width
    ramp = (0.35 + 0.65 * px.float() / problem.prepared.width)[None, :, None]
    target = linear_to_srgb(sh.diffuse * ramp + sh.specular)
    shot = type(problem)(texture=problem.texture, prepared=problem.prepared, target=target, weight=problem.weight)
    prior = ReflectanceMaps(base.expand(1, 3, 64, 64).clone(), spec, normal)
    return shot, true, prior, light


def test_shading_ramp_stays_out_of_the_albedo_and_detail_comes_in(scene):
    shot, true, prior, light = scene
    d = delight(shot.prepared, shot.target, prior, light, 0.6, "lobe", DelightSettings(), size=SIZE)
    skin, _, _, _ = _layout_masks(SIZE, None, torch.float32)
    seen = (d.confidence > 0.9) & (skin > 0.5)
    u, _ = _uv_grid(SIZE)
    lum = (d.maps.albedo * torch.tensor([0.2126, 0.7152, 0.0722]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    sides = [float(lum[seen & m].mean()) for m in (u[None, None] < 0.4, u[None, None] > 0.6)]
    # the photo's two halves differ by the ramp (about 1.6x); the albedo's by under 10 %
    assert abs(sides[0] / sides[1] - 1) < 0.1, sides
    # the fine pattern (period ~11 texels, 3.4 shading sigmas) is recovered from the photo
    est = torch.log(d.maps.albedo[:, 1:2].clamp_min(1e-4))[seen]
    ref = torch.log(true[:, 1:2])[seen]
    corr = float(torch.corrcoef(torch.stack([est - est.mean(), ref - ref.mean()]))[0, 1])
    assert corr > 0.7, corr
    # the reconstruction (with the shading residual) still matches the photo
    pred = render_maps(shot, d.maps, d.light, FitSettings(), d.shading)
    assert masked_psnr(pred, shot.target, shot.weight) > 33.0
    # and without it, it does not: the ramp really went into the shading residual
    flat = render_maps(shot, d.maps, d.light, FitSettings())
    assert masked_psnr(flat, shot.target, shot.weight) < masked_psnr(pred, shot.target, shot.weight) - 3


def test_eyes_brows_and_lips_take_the_photos_colour_not_the_priors(scene):
    shot, true, prior, light = scene
    d = delight(shot.prepared, shot.target, prior, light, 0.6, "lobe", DelightSettings(), size=SIZE)
    skin, _, _, _ = _layout_masks(SIZE, None, torch.float32)
    dark = (true[:, :1] < 0.1) & (d.confidence > 0.9) & (skin < 0.5)
    assert int(dark.sum()) > 20
    # the prior says 0.55 there; the photo shows ~0.05 (under the ramp's shading, which the
    # surrounding skin reveals and the delighting removes)
    assert float(d.maps.albedo[:, :1][dark].median()) < 0.15
    # the lips keep their own red (the prior's skin has G/R 0.69; the lips' truth 0.27)
    _, lips, _, _ = _layout_masks(SIZE, None, torch.float32)
    seen_lips = (lips > 0.5) & (d.confidence > 0.9)
    assert int(seen_lips.sum()) > 10
    gr = d.maps.albedo[:, 1:2][seen_lips] / d.maps.albedo[:, :1][seen_lips]
    assert float(gr.median()) < 0.45


def test_unseen_eyes_take_the_latent_albedo_and_lids_do_not_spread_into_them(scene):
    """Eyes the photo does not show (their irradiance near zero: a socket's occlusion)
    take the latent phase's drawn eyes (``unseen_features="latent"``), not the smoothed
    skin; with ``eyes_apart`` the well-seen lids around them do not fill them with
    confidence."""
    shot, true, prior, light = scene
    prep = shot.prepared
    eyes = torch.from_numpy(eyes_uv_coverage(SIZE))[None]
    grid = torch.stack([prep.uv[0][:, 0] * 2 - 1, 1 - prep.uv[0][:, 1] * 2], -1).view(1, 1, -1, 2)
    eye_p = torch.nn.functional.grid_sample(eyes[None], grid, align_corners=False)[0, 0, 0]
    assert int((eye_p > 0.5).sum()) > 20 and prep.vis_sh is not None
    dark = torch.where(eye_p > 0, torch.full_like(eye_p, 0.02), torch.ones_like(eye_p))
    hidden = dataclasses.replace(prep, vis_sh=prep.vis_sh * dark[None, None], fused_cache={})
    # the latent albedo draws white eyes (the skin prior smooths them away)
    drawn = prior.albedo.clone()
    small = torch.nn.functional.interpolate(eyes[None], size=drawn.shape[-2:], mode="area")[0, 0] > 0.5
    drawn[:, :, small] = 0.8
    latent = ReflectanceMaps(drawn, prior.specular, prior.normal)
    deep = torch.nn.functional.interpolate(small[None, None].float(), size=(SIZE, SIZE))[0, 0] > 0.5
    deep &= eyes[0] > 0.99

    def run(**kw):  # without the rim (see test_eye_rim_counts_as_unseen)
        return delight(hidden, shot.target, latent, light, 0.6, "lobe", DelightSettings(eye_rim=0.0, **kw), size=SIZE)

    old = run(eyes_apart=False, unseen_features="prior")
    spread = run(eyes_apart=False)
    new = run()
    # the lids spread confidence into the unseen eyes unless the eyes stand apart
    assert float(spread.confidence[0, 0][deep].max()) > 0.1
    assert float(new.confidence[0, 0][deep].max()) < 1e-3
    # unseen eyes: the smoothed skin (~0.55 red) before, the drawn 0.8 now
    assert float(old.maps.albedo[0, 0][deep].median()) < 0.65
    assert float(new.maps.albedo[0, 0][deep].median()) > 0.75
    assert float(new.maps.albedo[0, 1][deep].median()) > 0.75  # white, not the skin's colour
    with pytest.raises(InputError, match="unseen_features"):
        DelightSettings(unseen_features="skin")


def test_eye_rim_counts_as_unseen(scene):
    """``eye_rim``: the edge of the eye openings takes the latent albedo even where the
    photo shows it; the openings' core keeps the photo's colour."""
    shot, true, prior, light = scene
    eyes = torch.from_numpy(eyes_uv_coverage(SIZE)) > 0.5
    drawn = prior.albedo.clone()
    small = torch.nn.functional.interpolate(eyes[None, None].float(), size=drawn.shape[-2:], mode="area")[0, 0] > 0
    drawn[:, :, small] = 0.8
    latent = ReflectanceMaps(drawn, prior.specular, prior.normal)
    core = -torch.nn.functional.max_pool2d(-eyes[None, None].float(), 3, stride=1, padding=1)[0, 0] > 0.5
    rim = eyes & ~core
    assert int(core.sum()) > 4 and int(rim.sum()) > 4
    plain = delight(shot.prepared, shot.target, latent, light, 0.6, "lobe", DelightSettings(eye_rim=0.0), size=SIZE)
    edged = delight(shot.prepared, shot.target, latent, light, 0.6, "lobe", DelightSettings(eye_rim=1 / SIZE), size=SIZE)
    seen_rim = rim & (plain.confidence[0, 0] > 0.9)
    assert int(seen_rim.sum()) > 4
    assert float(edged.confidence[0, 0][rim].max()) == 0.0
    # the seen rim showed the photo's dark eye (0.05); now it is the drawn 0.8 ...
    assert float(plain.maps.albedo[0, 1][seen_rim].median()) < 0.3
    assert float(edged.maps.albedo[0, 1][seen_rim].median()) > 0.7
    # ... and the core is the same as before
    torch.testing.assert_close(edged.maps.albedo[0, :, core], plain.maps.albedo[0, :, core])
    with pytest.raises(InputError, match="eye_rim"):
        DelightSettings(eye_rim=0.5)


def _eye_shine_scene(scene, eye_spec: float):
    """The scene's photo re-rendered with the eye openings' specular weight ``eye_spec``
    and their albedo 0.01 (pupil and lash dark), and latent maps that draw the eyes at
    0.9, as the networks trained on the generator's eyes do."""
    shot, true, prior, light = scene
    cov = torch.from_numpy(eyes_uv_coverage(SIZE))[None, None]
    true = torch.where(cov > 0, torch.full_like(true, 0.01), true)
    spec_true = 0.3 + cov * (eye_spec - 0.3)
    sh = shade_prepared(shot.prepared, true, spec_true, light, prior.normal, to_image=False)
    photo = type(shot)(texture=shot.texture, prepared=shot.prepared,
                       target=linear_to_srgb(sh.diffuse + sh.specular), weight=shot.weight)
    drawn = torch.where(cov > 0, torch.full_like(cov, 0.9), torch.full_like(cov, 0.3))
    return photo, ReflectanceMaps(prior.albedo, drawn, prior.normal), light, cov[0, 0]


def test_real_eyes_lower_the_drawn_eye_shine_and_are_seen(scene):
    """Eyes whose photo is darker than a 0.9 specular weight allows (real eyes: dark
    pupils, diffuse sclera) get their specular weight capped, and then the photo sees
    them: their albedo is the photo's dark eye, not the drawn fill."""
    photo, latent, light, cov = _eye_shine_scene(scene, 0.05)
    cap = eye_specular_cap(photo.prepared, photo.target, latent, light, 0.6, "lobe", 0.5)
    assert cap is not None and float(cap) < 0.5
    kept = delight(photo.prepared, photo.target, latent, light, 0.6, "lobe",
                   DelightSettings(eye_rim=0.0, eye_specular_margin=0.0), size=SIZE)
    capped = delight(photo.prepared, photo.target, latent, light, 0.6, "lobe",
                     DelightSettings(eye_rim=0.0), size=SIZE)
    core = cov > 0.99
    torch.testing.assert_close(kept.maps.specular, latent.specular)
    assert float(capped.maps.specular[0, 0][core].max()) <= float(cap) + 1e-6
    # with the drawn 0.9 the eyes' diffuse is 10 %: too dim to be seen well, so the eyes
    # stay mostly the latent fill (the skin-coloured prior here); capped, they are seen
    assert float(kept.confidence[0, 0][core].median()) < 0.5
    assert float(kept.maps.albedo[0, 1][core].median()) > 0.1
    assert float(capped.confidence[0, 0][core].median()) > 0.9
    assert float(capped.maps.albedo[0, 1][core].median()) < 0.03  # the photo's dark eye (0.01)


def test_eyes_as_shiny_as_drawn_keep_their_shine(scene):
    photo, latent, light, cov = _eye_shine_scene(scene, 0.9)
    cap = eye_specular_cap(photo.prepared, photo.target, latent, light, 0.6, "lobe", 0.5)
    assert cap is not None and float(cap) >= 0.9
    d = delight(photo.prepared, photo.target, latent, light, 0.6, "lobe", DelightSettings(), size=SIZE)
    torch.testing.assert_close(d.maps.specular, latent.specular)


def test_capping_the_eye_shine_leaves_no_bright_ring():
    size = 128
    cov = torch.from_numpy(eyes_uv_coverage(size))
    near = torch.nn.functional.max_pool2d((cov > 0).float()[None, None], 3, stride=1, padding=1)[0, 0] > 0
    spec = torch.where(near, torch.full_like(cov, 0.9), torch.full_like(cov, 0.25))[None, None]
    out = cap_eye_specular(spec, 0.1)
    assert float(out[0, 0][cov > 0.99].max()) == pytest.approx(0.1)
    # every texel the drawn shine reached ends at most at the skin's 0.25
    assert float(out[0, 0][near].max()) <= 0.25 + 1e-6
    torch.testing.assert_close(out[0, 0][~near], spec[0, 0][~near])
    # a cap above the skin level leaves the lid share at the cap, never above the drawn value
    high = cap_eye_specular(spec, 0.5)
    assert float(high[0, 0][near].max()) <= 0.5 + 1e-6
    with pytest.raises(InputError, match="eye_specular_margin"):
        DelightSettings(eye_specular_margin=2.0)


def test_skin_texels_end_inside_the_skin_range(scene):
    shot, _, prior, light = scene
    d = delight(shot.prepared, shot.target, prior, light, 0.6, "lobe", DelightSettings(), size=SIZE)
    skin, _, _, _ = _layout_masks(SIZE, None, torch.float32)
    assert int(skin_range_violations(d.maps.albedo, skin).sum()) == 0
    off = delight(shot.prepared, shot.target, prior, light, 0.6, "lobe", DelightSettings(skin_range=False), size=SIZE)
    assert off.out_of_range == pytest.approx(d.out_of_range)


def test_skin_model_albedos_are_in_range_and_odd_colours_are_not():
    m, h = np.meshgrid(np.linspace(0, 1.6, 17), np.linspace(0, 1.8, 19))
    alb = torch.as_tensor(skin_albedo(m.ravel(), h.ravel()), dtype=torch.float32)  # [N, 3]
    img = alb.T.reshape(1, 3, -1, 1)
    assert int(skin_range_violations(img, torch.ones(1, 1, img.shape[2], 1)).sum()) == 0
    odd = torch.tensor([[0.5, 0.2, 0.5], [0.2, 0.5, 0.2], [0.9, 0.9, 0.95], [0.002, 0.001, 0.001]]).T.reshape(1, 3, 4, 1)
    assert bool(skin_range_violations(odd, torch.ones(1, 1, 4, 1)).all())
    fixed = project_to_skin(odd)
    assert int(skin_range_violations(fixed, torch.ones(1, 1, 4, 1)).sum()) == 0
    assert torch.allclose(project_to_skin(fixed), fixed, atol=1e-6)
    assert SKIN_RANGE.gr_max <= 1.0  # green never exceeds red in skin


def test_splat_conserves_weight_and_normalized_blur_fills_gaps():
    uv = torch.tensor([[0.5 / 8, 1 - 0.5 / 8], [0.3, 0.6], [0.71, 0.2]])
    vals = torch.tensor([[1.0], [2.0], [3.0]])
    num, den = splat_to_uv(uv, vals, torch.ones(3), 8)
    assert float(den.sum()) == pytest.approx(3.0)
    assert float(num.sum()) == pytest.approx(6.0)
    assert float(den[0, 0, 0]) == pytest.approx(1.0)  # a texel centre lands on one texel
    const = torch.zeros(1, 16, 16)
    w = torch.zeros(1, 16, 16)
    w[:, ::3, ::3] = 1
    filled, dens = normalized_blur(const + 0.7 * w, w, 1.0)
    inside = dens > 1e-3
    assert torch.allclose(filled[inside], torch.full_like(filled[inside], 0.7), atol=1e-5)


def test_fit_with_delighting_returns_the_shading_and_the_paper_maps(tiny_nets, problem):
    res = fit_latents(tiny_nets, problem, FitSettings(iterations=2, albedo_gauge=True, delight=DelightSettings()))
    # the delit maps follow the face's pixel count, at least T's resolution (above the network's 64)
    side = albedo_size(float(problem.weight.sum()), SIZE, 1024)
    assert side >= SIZE
    assert res.shading is not None and res.shading.shape == (1, 3, side, side)
    assert res.maps.albedo.shape == (1, 3, side, side)
    assert res.latent_maps is not None and res.latent_maps.albedo.shape[-1] == 64
    assert 0.0 <= res.out_of_range <= 1.0
    with_s = masked_psnr(render_maps(problem, res.maps, res.light, FitSettings(), res.shading),
                         problem.target, problem.weight)
    latent = masked_psnr(render_maps(problem, res.latent_maps, res.light, FitSettings()), problem.target, problem.weight)
    assert with_s > latent + 5


def test_delight_settings_from_config():
    assert DelightSettings.from_config(None) is None
    assert DelightSettings.from_config({"enabled": False, "detail_limit": 0.3}) is None
    assert DelightSettings.from_config({"enabled": True, "detail_limit": 0.3}).detail_limit == 0.3
    with pytest.raises(InputError, match="unknown"):
        DelightSettings.from_config({"detail_limt": 0.3})
    with pytest.raises(InputError, match="number"):
        DelightSettings.from_config({"detail_limit": "abc"})
    with pytest.raises(InputError, match="true or false"):
        DelightSettings.from_config({"mirror": "no"})
    with pytest.raises(InputError):
        DelightSettings(shading_sigma=0.0)


def test_wide_blur_on_a_shrunk_grid_matches_the_direct_one():
    from facerefl.fit.delight import _gauss

    torch.manual_seed(0)
    num = torch.rand(3, 128, 128)
    den = (torch.rand(1, 128, 128) > 0.5).float()
    fast, dens = normalized_blur(num * den, den, 20.0)
    n, d = _gauss(num * den, 20.0), _gauss(den, 20.0)
    direct = n / d
    inner = slice(24, 104)  # away from the border, where zero padding differs by design
    assert torch.allclose(fast[:, inner, inner], direct[:, inner, inner], atol=0.01)
    assert torch.allclose(dens[:, inner, inner], d[:, inner, inner], rtol=0.05)
