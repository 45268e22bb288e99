"""Realism effects (issue 13): switchable, deterministic, and each where it belongs."""

import dataclasses

import numpy as np
import pytest
import torch

from facerefl.data import assemble
from facerefl.data.assemble import ExampleGenerator, GeneratorSettings, Sizes, stage_rng
from facerefl.data.datamodule import SyntheticDataModule
from facerefl.data.effects import EFFECTS, PHOTO_EFFECTS, EffectSettings
from facerefl.data.layout import face_layout
from facerefl.data.procedural import resize_reflectance, sample_params, synthesize
from facerefl.data.render_fast import gbuffer_of, render_sh
from facerefl.data.sensor import SensorSettings, apply_sensor
from facerefl.geometry.bake import bake_maps, bake_vertices
from facerefl.geometry.raycast import RayCaster
from facerefl.geometry.unwrap import unwrap
from facerefl.geometry.uvmap import rasterize_uv

SMALL = Sizes(image=128, texture=64, detail=64)
#: no noise, no JPEG: a change in the photo stays where the effect put it
CLEAN = SensorSettings(photons=(1e9, 1e9), read_noise=(0.0, 0.0), jpeg_quality=(0, 0))


def forced(*names: str) -> EffectSettings:
    """Only ``names``, each with probability 1."""
    eff = EffectSettings().only(*names)
    for n in names:
        eff = eff.with_p(n, 1.0)
    return eff


@pytest.fixture(scope="module")
def plain():
    return ExampleGenerator(GeneratorSettings(sizes=SMALL, bake_dirs=16, sensor=CLEAN))


def _gen(*names: str, sensor=CLEAN) -> ExampleGenerator:
    return ExampleGenerator(GeneratorSettings(sizes=SMALL, bake_dirs=16, sensor=sensor,
                                              effects=forced(*names)))


# ----------------------------------------------------------------- settings, stages


def test_settings_switches():
    on = EffectSettings()
    assert set(on.enabled) == set(EFFECTS) and EffectSettings.off().enabled == ()
    assert on.only("glasses").enabled == ("glasses",)
    assert on.with_p("sun", 1.0).sun.p == 1.0 and on.with_p("sun", 1.0).glasses == on.glasses
    assert GeneratorSettings().effects == EffectSettings.off()  # library default: none
    with pytest.raises(ValueError, match="unknown"):
        on.only("hat")
    with pytest.raises(ValueError, match=r"effects.teeth.p"):
        dataclasses.replace(on, teeth=dataclasses.replace(on.teeth, p=1.5))
    with pytest.raises(dataclasses.FrozenInstanceError):
        on.teeth.p = 0.5  # type: ignore[misc]


def test_training_gets_the_effects_and_the_test_set_does_not():
    assert SyntheticDataModule().settings.effects == EffectSettings()
    assert SyntheticDataModule(effects=False).settings.effects == EffectSettings.off()
    from facerefl.data import make_cache, make_testset

    seen = {}

    def fake_run(args, settings_of):
        seen["s"] = settings_of(Sizes(), args)
        return 0

    orig = make_cache.run
    try:
        make_cache.run = make_testset.run = fake_run
        make_testset.main(["--n", "1"])
        assert seen["s"].effects == EffectSettings.off() and seen["s"].renderer == "mc"
        make_cache.main(["--out", "x"])
        assert seen["s"].effects == EffectSettings()
        make_cache.main(["--out", "x", "--no-effects"])
        assert seen["s"].effects == EffectSettings.off()
    finally:
        make_cache.run = make_testset.run = orig


def test_stages_are_appended_never_reordered():
    old = {"reflectance": 0, "scene": 1, "light": 2, "sensor": 3, "render": 4}
    assert {k: assemble._STAGES[k] for k in old} == old
    assert set(EFFECTS) <= set(assemble._STAGES)
    assert sorted(assemble._STAGES.values()) == list(range(len(assemble._STAGES)))


def test_effects_off_is_the_pipeline_before_the_effects(plain):
    """With every effect off an example is exactly the pre-effects sequence of stages."""
    seed, s = 7, plain.settings
    master = max(SMALL.texture, SMALL.detail)
    refl = synthesize(sample_params(stage_rng(seed, "reflectance")), master)
    scene = assemble.sample_scene(stage_rng(seed, "scene"), plain.template, SMALL.image, s.scene)
    light = plain.prior.sample(stage_rng(seed, "light"))
    caster = RayCaster(scene.mesh.vertices, scene.mesh.faces)
    vbake = bake_vertices(scene.mesh, s.bake_dirs, caster)
    baked = bake_maps(vbake, rasterize_uv(scene.mesh.faces, scene.mesh.uvs, master))
    linear = render_sh(scene, gbuffer_of(scene), refl, light, baked.visibility_sh, baked.bent_normal)
    photo = apply_sensor(linear.numpy(), stage_rng(seed, "sensor"), s.sensor)
    photo_t = torch.from_numpy(np.ascontiguousarray(photo.transpose(2, 0, 1)))
    unw = unwrap(photo_t, scene.mesh, scene.camera, resolution=SMALL.texture, caster=caster)
    small = resize_reflectance(refl, SMALL.texture, SMALL.detail)
    b = plain(seed)
    assert torch.equal(b.image[0], photo_t) and torch.equal(b.texture[0], unw.texture)
    assert torch.equal(b.albedo[0], small.albedo) and torch.equal(b.normal[0], small.normal)
    assert torch.equal(b.specular[0], small.specular) and torch.equal(b.light[0], light.sh)


def test_zero_probability_effects_change_nothing(plain):
    """Effects with p = 0 but other ranges: same bytes (their streams are never drawn)."""
    eff = EffectSettings.off()
    eff = dataclasses.replace(eff, sun=dataclasses.replace(eff.sun, ratio=(9.0, 9.5)))
    g = ExampleGenerator(dataclasses.replace(plain.settings, effects=eff))
    a, b = plain(3), g(3)
    for k, t in a.tensors().items():
        assert torch.equal(t, b.tensors()[k]), k


def test_one_effect_does_not_change_the_others_draws():
    a = _gen("glasses", "camera")(5)
    b = _gen("glasses", "camera", "teeth")(5)
    c = _gen("teeth")(5)
    assert torch.equal(b.albedo, c.albedo)  # teeth drawn alike with or without glasses
    assert not torch.equal(a.albedo, b.albedo)
    assert torch.equal(a.light, b.light)


# ------------------------------------------------------------ surface (in the targets)


@pytest.fixture(scope="module")
def face():
    from facerefl.data.surface import SurfaceMaps

    p = sample_params(np.random.default_rng(4))
    p = dataclasses.replace(p, beard=0.0)
    return p, SurfaceMaps.of(synthesize(p, 128)), face_layout(128)


def _changed(a, b, tol=1e-6) -> np.ndarray:
    return (np.abs(a.albedo - b.albedo).max(-1) > tol) | (np.abs(a.specular - b.specular) > tol) \
        | (np.abs(a.normal - b.normal).max(-1) > tol)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_teeth_only_in_the_mouth(face, seed):
    from facerefl.data.effects import TeethSettings
    from facerefl.data.surface import add_teeth

    p, m, lay = face
    out = add_teeth(m, p, lay, np.random.default_rng(seed), TeethSettings())
    diff = _changed(m, out)
    assert diff.sum() > 20
    assert not diff[lay.lips < 0.01].any()  # only inside the lips' outline
    mouth = diff & (lay.lips > 0.5)
    lum = out.albedo[mouth].mean()
    assert lum > m.albedo[mouth].mean() and out.specular[mouth].mean() > 0.3  # white, wet


def test_stubble_only_in_the_beard_zone(face):
    from facerefl.data.effects import StubbleSettings
    from facerefl.data.surface import add_stubble

    p, m, lay = face
    out = add_stubble(m, p, lay, np.random.default_rng(0), StubbleSettings())
    diff = _changed(m, out)
    zone = np.maximum(lay.beard, lay.mustache)
    assert diff.sum() > 100 and not diff[zone == 0].any()
    assert out.albedo[zone > 0.5].mean() < m.albedo[zone > 0.5].mean()  # darker
    full = dataclasses.replace(p, beard=0.9)
    assert add_stubble(m, full, lay, np.random.default_rng(0), StubbleSettings()) is m


def test_makeup_items_where_they_belong(face):
    from facerefl.data.effects import MakeupSettings
    from facerefl.data.surface import add_makeup

    p, m, lay = face
    only = {k: 0.0 for k in ("lipstick", "eyeshadow", "eyeliner", "foundation", "blush")}
    zones = {"lipstick": lay.lips, "eyeshadow": lay.eyelids, "blush": lay.cheeks * lay.skin,
             "foundation": lay.skin, "eyeliner": None}
    for item, zone in zones.items():
        s = dataclasses.replace(MakeupSettings(), **{**only, item: 1.0})
        out = add_makeup(m, p, lay, np.random.default_rng(1), s)
        diff = _changed(m, out, tol=2e-3)
        assert diff.sum() > 10, item
        assert np.allclose(out.normal, m.normal), item  # makeup has no relief
        if zone is not None:
            assert not diff[zone < 2e-3].any(), item
        else:  # eyeliner: along the eye opening's rim
            assert not diff[lay.lashes + lay.eyelids + lay.under_eye < 1e-4].sum() > 0.2 * diff.sum()
    # foundation evens the skin: less texture variation on the cheeks
    s = dataclasses.replace(MakeupSettings(), **{**only, "foundation": 1.0},
                            opacity=(0.9, 0.9))
    out = add_makeup(m, p, lay, np.random.default_rng(1), s)
    sel = (lay.cheeks > 0.5) & (lay.skin > 0.5)
    assert out.albedo[sel].std(0).mean() < 0.8 * m.albedo[sel].std(0).mean()


def test_surface_effects_reach_the_targets():
    b0 = _gen()(2)
    for name in ("teeth", "makeup"):
        b = _gen(name)(2)
        assert not torch.equal(b.albedo, b0.albedo), name
        assert not torch.equal(b.image, b0.image), name
        assert torch.equal(b.light, b0.light) and torch.equal(b.vertices, b0.vertices), name


# ---------------------------------------------------------- photo only (not in targets)


@pytest.mark.parametrize("name", PHOTO_EFFECTS)
def test_photo_effects_leave_the_targets_unchanged(plain, name):
    seed = 6
    a, b = plain(seed), _gen(name)(seed)
    for k in ("albedo", "specular", "normal", "vertices", "uv_mask", "vis_sh", "bent_normal"):
        assert torch.equal(getattr(a, k), getattr(b, k)), (name, k)
    assert not torch.equal(a.image, b.image), name
    assert not torch.equal(a.texture[:, :3], b.texture[:, :3]), name
    if name != "sun":
        assert torch.equal(a.light, b.light), name


def test_hair_only_over_the_forehead_and_temples(plain):
    seed = 11
    a, b = plain(seed), _gen("hair")(seed)
    diff = (a.texture[0, :3] - b.texture[0, :3]).abs().amax(0) > 2 / 255
    lay = face_layout(SMALL.texture)
    eye_row = int(lay.eye_centers[:, 1].mean())
    mouth_row = int(lay.points[13][1])
    assert diff.sum() > 30
    assert not diff[mouth_row:].any()  # nothing at or below the mouth
    assert diff[:eye_row].sum() > 0.6 * diff.sum()  # temple hair reaches a little lower


def test_glasses_around_the_eyes(plain):
    seed = 12
    a, b = plain(seed), _gen("glasses")(seed)
    diff = ((a.image[0] - b.image[0]).abs().amax(0) > 2 / 255).numpy()
    from facerefl.render.raster import project_points

    scene = assemble.sample_scene(stage_rng(seed, "scene"), plain.template, SMALL.image,
                                  plain.settings.scene)
    eyes = project_points(scene.mesh.vertices[[33, 133, 362, 263]], scene.camera).numpy()
    rows = np.nonzero(diff.any(1))[0]
    eye_row, face_h = eyes[:, 1].mean(), SMALL.image * 0.75
    assert diff.sum() > 50
    assert abs(np.median(np.nonzero(diff)[0]) - eye_row) < 0.15 * face_h
    assert rows.max() - rows.min() < 0.6 * SMALL.image


def test_sun_light_is_the_sh_of_everything_that_lit_the_face(plain):
    from facerefl.data.occluders import sample_sun, with_sun
    from facerefl.render.sh import project_to_sh, sphere_quadrature

    seed = 6
    light = plain.prior.sample(stage_rng(seed, "light"))
    rng = stage_rng(seed, "sun")
    rng.random()
    sun = sample_sun(rng, light, EffectSettings().sun)
    env, total = with_sun(light, sun)
    assert torch.allclose(env.sh, light.sh * sun.scale)
    assert torch.allclose(total.double(), env.sh.double() + sun.sh, atol=1e-6)
    # the sun's SH is the projection of a narrow lobe of the same power about its direction
    dirs, w = sphere_quadrature(128, 256, torch.float64)
    d = torch.as_tensor(sun.direction)
    lobe = torch.exp(2000.0 * ((dirs @ d) - 1))
    lobe = lobe / (lobe * w).sum()
    ref = project_to_sh(dirs, lobe[:, None] * torch.as_tensor(sun.irradiance)[None], w)
    assert torch.allclose(ref, sun.sh, rtol=0.02, atol=1e-3)
    b = _gen("sun")(seed)
    assert torch.allclose(b.light[0].double(), total.double(), atol=1e-6)


def test_sun_casts_shadows_only_where_the_face_hides_it(plain):
    from facerefl.data.occluders import Sun, render_sun, sun_visibility

    scene = assemble.sample_scene(np.random.default_rng(0), plain.template, SMALL.image,
                                  dataclasses.replace(plain.settings.scene, yaw_deg=0.0,
                                                      pitch_deg=0.0, roll_deg=0.0))
    gbuf = gbuffer_of(scene)
    caster = RayCaster(scene.mesh.vertices, scene.mesh.faces)
    side = np.array([0.8, 0.2, 0.55])  # from the subject's left, in front
    sun = Sun(side / np.linalg.norm(side), np.array([3.0, 3.0, 3.0]), 0.5, 0.0)
    vis = sun_visibility(gbuf, caster, sun)
    m = gbuf.mask[0, ..., 0] > 0.5
    assert float(vis[~m].abs().max()) == 0.0
    lit, dark = float(vis[m].mean()), float((vis[m] < 0.5).float().mean())
    assert 0.3 < lit < 0.95 and dark > 0.05  # the nose and the far cheek are in shadow
    # the shadowed pixels facing the sun lie on the far side of the nose (image left)
    n = gbuf.normal[0]
    facing = m & ((n @ torch.as_tensor(sun.direction, dtype=n.dtype)) > 0.3)
    cast = facing & (vis < 0.5)
    nose_x = float(gbuf.position[0][m][:, 0].mean())
    assert cast.sum() > 0 and float(gbuf.position[0][cast][:, 0].mean()) < nose_x
    refl = synthesize(sample_params(np.random.default_rng(0)), 64)
    img = render_sun(gbuf, refl, sun, vis)
    assert float(img[~m].abs().max()) == 0.0 and float(img[cast].abs().max()) == 0.0
    assert float(img[facing & (vis > 0.99)].min()) > 0


# ---------------------------------------------------------------------------- camera


def test_camera_effects():
    from facerefl.data.effects import CameraSettings
    from facerefl.data.sensor import CameraEffects, chroma_subsample, motion_kernel, sample_camera

    rng = np.random.default_rng(0)
    img = rng.uniform(0.2, 0.8, (64, 64, 3)).astype(np.float32)
    none = CameraEffects()
    assert np.array_equal(none.optics(img), img) and np.array_equal(none.finish(img), img)
    assert none.sensor(SensorSettings()) == SensorSettings()
    blur = CameraEffects(defocus_px=1.5).optics(img)
    assert blur.std() < 0.5 * img.std() and abs(blur.mean() - img.mean()) < 1e-3
    k = motion_kernel(4.0, 30.0)
    assert k.shape[0] % 2 == 1 and abs(k.sum() - 1) < 1e-5
    flat = np.full((64, 64, 3), 0.5, np.float32)
    vig = CameraEffects(vignetting=0.4).optics(flat)
    assert vig[32, 32, 0] > 0.49 and abs(vig[0, 0, 0] - 0.5 * 0.6) < 0.02
    sharp = CameraEffects(sharpen_amount=1.0).finish(img)
    assert sharp.std() > img.std()
    sub = chroma_subsample(img)
    assert sub.shape == img.shape and np.abs(sub - img).mean() > 1e-3
    grey = np.repeat(img[..., :1], 3, -1)
    assert np.allclose(chroma_subsample(grey), grey, atol=2e-3)  # no chroma, no change
    noisy = CameraEffects(noise_gain=2.0).sensor(SensorSettings())
    assert noisy.photons[0] == SensorSettings().photons[0] / 4
    drawn = [sample_camera(np.random.default_rng(i), CameraSettings()) for i in range(40)]
    assert any(c.defocus_px > 0 for c in drawn) and any(c.chroma for c in drawn)
    assert all(0 <= c.vignetting <= CameraSettings().vignetting_strength[1] for c in drawn)


def test_default_effects_example_contract():
    g = ExampleGenerator(GeneratorSettings(sizes=SMALL, bake_dirs=16, effects=EffectSettings()))
    for seed in range(3):
        b, c = g(seed), g(seed)
        for k, t in b.tensors().items():
            assert torch.equal(t, c.tensors()[k]), k
        assert 0 <= float(b.image.min()) and float(b.image.max()) <= 1
        assert 0 <= float(b.albedo.min()) and float(b.albedo.max()) <= 1
        assert torch.allclose(b.normal[0].norm(dim=0), torch.ones(64, 64), atol=1e-4)
        assert torch.isfinite(b.light).all()
