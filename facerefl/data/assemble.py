"""One synthetic example, end to end (issue 4, part 5).

seed -> procedural reflectance + random scene + augmented real lighting -> bake the
mesh's self-occlusion -> render (fast SH renderer for training, Monte Carlo for the test
set) -> sensor noise and JPEG -> unwrap the photo with the same code real photos use
(known geometry) with Poisson hole filling -> a :class:`ReflectanceBatch` of one example
at the sizes of the preset.

Realism effects (:mod:`facerefl.data.effects`, issue 13) slot into that sequence: stubble,
makeup and teeth into the reflectance (the targets show them); hair into a copy of the
maps used only to render the photo; a sun with ray-cast shadows (the SH light includes
it), glasses, and camera effects into the photo. Each draws from a random stage of its
own, appended to :data:`_STAGES`; with every effect off (the default, and the test set)
an example is bit-identical to one made before they existed.

Every random draw comes from a NumPy generator derived from ``(seed, stage)``, so an
example depends only on its seed and the settings: the same seed gives bit-identical
tensors whatever the worker, order or batch.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from facerefl.data import surface
from facerefl.data.effects import SURFACE_EFFECTS, EffectSettings
from facerefl.data.layout import face_layout
from facerefl.data.lighting import LightPrior, LightSettings, load_table
from facerefl.data.occluders import (
    add_glasses, render_sun, sample_glasses, sample_sun, sun_visibility, with_sun,
)
from facerefl.data.procedural import (
    Reflectance, ReflectanceParams, resize_reflectance, sample_params, synthesize,
)
from facerefl.data.render_fast import background, gbuffer_of, render_sh
from facerefl.data.render_mc import EnvSampler, render_mc
from facerefl.data.scene import SceneSettings, sample_scene
from facerefl.data.sensor import SensorSettings, apply_sensor, sample_camera
from facerefl.data.types import ReflectanceBatch
from facerefl.errors import InputError
from facerefl.geometry.bake import bake_maps, bake_vertices
from facerefl.geometry.raycast import RayCaster
from facerefl.geometry.result import GeometryConfig, build_face_geometry
from facerefl.geometry.template import NUM_VERTICES, Template, load_template
from facerefl.geometry.unwrap import unwrap
from facerefl.geometry.uvmap import rasterize_uv

#: Stage ids of the per-example random streams (never reorder: it changes every example).
_STAGES = {"reflectance": 0, "scene": 1, "light": 2, "sensor": 3, "render": 4,
           # issue 13's effects, one stage each (see facerefl.data.effects)
           "stubble": 5, "makeup": 6, "teeth": 7, "hair": 8, "sun": 9, "glasses": 10,
           "camera": 11}
RENDERERS = ("sh", "mc")
#: Where T comes from: ``"truth"`` unwraps the photo with the scene's own mesh and camera;
#: ``"photo"`` with the geometry stage's fit of the photo, as a user's photo is unwrapped
#: (see :class:`GeneratorSettings`).
UNWRAPS = ("truth", "photo")


class UnwrapFailed(Exception):
    """The geometry stage rejected an example's photo (``unwrap="photo"``): the cache
    writer skips that seed and records it."""
#: HDR maps held out of the training lighting prior; the test set is lit by them only.
TEST_MAPS = ("lobby", "park", "sunset")


@dataclass(frozen=True)
class Sizes:
    """Resolutions of one preset.

    Attributes:
        image: rendered photo side (pixels).
        texture: side of T and of the albedo map.
        detail: side of the specular and normal maps.
    """

    image: int = 256
    texture: int = 256
    detail: int = 128

    def __post_init__(self) -> None:
        for name in ("image", "texture", "detail"):
            v = getattr(self, name)
            if not 16 <= v <= 1024:
                raise ValueError(f"size {name}={v} out of range; use 16..1024")


@dataclass(frozen=True)
class GeneratorSettings:
    """Everything that defines the synthetic distribution besides the seed.

    Attributes:
        sizes: preset resolutions.
        renderer: ``"sh"`` (training; differentiable renderer) or ``"mc"`` (test set).
        spp: Monte Carlo samples per pixel (renderer ``"mc"``).
        bake_dirs: ray directions per vertex for the visibility bake.
        maps: HDR maps the lighting is drawn from (None: all but :data:`TEST_MAPS`).
        scene, light, sensor: the randomization ranges of each stage.
        effects: the realism effects (default: all off; training turns them on with
            ``EffectSettings()``).
        unwrap: ``"truth"`` (T from the scene's mesh and camera) or ``"photo"`` (T from
            :func:`~facerefl.geometry.result.build_face_geometry` run on the rendered photo
            at its default resolution, resized to ``sizes.texture``: what the fit of a
            photo feeds the networks, misfit, background bleed and all). The targets stay
            in the template's UV layout either way.
    """

    sizes: Sizes = field(default_factory=Sizes)
    renderer: str = "sh"
    spp: int = 64
    bake_dirs: int = 128
    maps: tuple[str, ...] | None = None
    scene: SceneSettings = field(default_factory=SceneSettings)
    light: LightSettings = field(default_factory=LightSettings)
    sensor: SensorSettings = field(default_factory=SensorSettings)
    effects: EffectSettings = field(default_factory=EffectSettings.off)
    unwrap: str = "truth"

    def __post_init__(self) -> None:
        if self.renderer not in RENDERERS:
            raise ValueError(f"renderer must be one of {RENDERERS}, got {self.renderer!r}")
        if self.unwrap not in UNWRAPS:
            raise ValueError(f"unwrap must be one of {UNWRAPS}, got {self.unwrap!r}")


def stage_rng(seed: int, stage: str) -> np.random.Generator:
    """Independent generator of one stage of example ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), _STAGES[stage]]))


class ExampleGenerator:
    """Builds examples; holds the per-process state (template, light table).

    Args:
        settings: the synthetic distribution.
        template: the face template (default: the cached one).
        table: SH light table (default: the committed ``data/sh_lights.json``).
    """

    def __init__(self, settings: GeneratorSettings = GeneratorSettings(),
                 template: Template | None = None,
                 table: dict[str, np.ndarray] | None = None) -> None:
        self.settings = settings
        self.template = template if template is not None else load_template()
        table = table if table is not None else load_table()
        names = settings.maps if settings.maps is not None else tuple(
            n for n in sorted(table) if n not in TEST_MAPS)
        self.prior = LightPrior(table, settings.light, list(names))

    def effect_rng(self, seed: int, name: str) -> np.random.Generator | None:
        """Generator of effect ``name`` for example ``seed``, or None when it is absent."""
        p = getattr(self.settings.effects, name).p
        if p <= 0:
            return None
        rng = stage_rng(seed, name)
        return rng if rng.random() < p else None

    def surface_effects(self, seed: int, params: ReflectanceParams, refl: Reflectance,
                        names: tuple[str, ...] = SURFACE_EFFECTS) -> Reflectance:
        """``refl`` with the effects ``names`` that example ``seed`` has (same object if none)."""
        eff = self.settings.effects
        rngs = {n: self.effect_rng(seed, n) for n in names}
        if all(r is None for r in rngs.values()):
            return refl
        lay = face_layout(refl.albedo.shape[-1])
        maps = surface.SurfaceMaps.of(refl)
        for name, rng in rngs.items():
            if rng is not None:
                maps = getattr(surface, f"add_{name}")(maps, params, lay, rng, getattr(eff, name))
        return maps.reflectance()

    def __call__(self, seed: int) -> ReflectanceBatch:
        """Example ``seed`` as a batch of one."""
        s, z = self.settings, self.settings.sizes
        master = max(z.texture, z.detail)
        params = sample_params(stage_rng(seed, "reflectance"))
        refl = self.surface_effects(seed, params, synthesize(params, master))
        scene = sample_scene(stage_rng(seed, "scene"), self.template, z.image, s.scene)
        light = self.prior.sample(stage_rng(seed, "light"))
        shown = self.surface_effects(seed, params, refl, ("hair",))  # what the photo shows
        sun_rng = self.effect_rng(seed, "sun")
        sun = sample_sun(sun_rng, light, s.effects.sun) if sun_rng is not None else None
        light_sh = light.sh
        if sun is not None:
            light, light_sh = with_sun(light, sun)
        mesh = scene.mesh
        caster = RayCaster(mesh.vertices, mesh.faces)
        vbake = bake_vertices(mesh, s.bake_dirs, caster)
        gbuf = gbuffer_of(scene)
        if s.renderer == "sh":
            baked = bake_maps(vbake, rasterize_uv(mesh.faces, mesh.uvs, master))
            linear = render_sh(scene, gbuf, shown, light, baked.visibility_sh, baked.bent_normal)
        else:
            linear = render_mc(scene, gbuf, shown, EnvSampler.from_light(light),
                               stage_rng(seed, "render"), background(light, scene.camera),
                               spp=s.spp, caster=caster)
        sun_vis = None
        if sun is not None:
            sun_vis = sun_visibility(gbuf, caster, sun)
            linear = linear + render_sun(gbuf, shown, sun, sun_vis)
        glasses_rng = self.effect_rng(seed, "glasses")
        if glasses_rng is not None:
            glasses = sample_glasses(glasses_rng, scene, s.effects.glasses)
            linear = add_glasses(linear, scene, gbuf, glasses, light_sh, sun, sun_vis)
        camera_rng = self.effect_rng(seed, "camera")
        if camera_rng is None:
            photo = apply_sensor(linear.numpy(), stage_rng(seed, "sensor"), s.sensor)
        else:
            cam = sample_camera(camera_rng, s.effects.camera)
            photo = apply_sensor(cam.optics(linear.numpy()), stage_rng(seed, "sensor"),
                                 cam.sensor(s.sensor), finish=cam.finish)
        photo_t = torch.from_numpy(np.ascontiguousarray(photo.transpose(2, 0, 1)))
        unw = unwrap(photo_t, mesh, scene.camera, resolution=z.texture, caster=caster)
        out_maps = bake_maps(vbake, rasterize_uv(mesh.faces, mesh.uvs, z.texture))
        small = resize_reflectance(refl, z.texture, z.detail)
        cam = scene.camera
        texture, seen = unw.texture[None], unw.visible[None, None].float()
        if s.unwrap == "photo":
            texture, seen = photo_texture(photo_t, z.texture)
        return ReflectanceBatch(
            texture=texture,
            albedo=small.albedo[None],
            specular=small.specular[None],
            normal=small.normal[None],
            light=light_sh[None],
            image=photo_t[None],
            uv_mask=seen,
            vis_sh=out_maps.visibility_sh[None],
            bent_normal=out_maps.bent_normal[None],
            vertices=mesh.vertices[None, :NUM_VERTICES].float(),
            intrinsics=torch.tensor([[cam.fx, cam.fy, cam.cx, cam.cy]], dtype=torch.float32),
            seed=torch.tensor([int(seed)], dtype=torch.int64),
        )


#: Geometry settings of :func:`photo_texture`: the fit's defaults, with the fewest bake
#: directions (the bake is not used).
PHOTO_GEOMETRY = GeometryConfig(n_dirs=16)


def photo_texture(photo: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """T as the fit of a photo sees it: the geometry stage on ``photo`` ``[3, H, W]`` (sRGB),
    its T (``[1, 4, R, R]`` at the stage's default R) resized to ``size`` like the networks
    resize their input, and its valid-skin mask as the seen-texel mask ``[1, 1, size, size]``.

    Raises:
        UnwrapFailed: the geometry stage rejected the photo (no face, a face too small).
    """
    try:
        with warnings.catch_warnings():  # "2 faces found": the largest is the rendered one
            warnings.simplefilter("ignore", UserWarning)
            geom = build_face_geometry(photo, PHOTO_GEOMETRY)
    except InputError as e:
        raise UnwrapFailed(str(e).splitlines()[0]) from e
    tex = geom.texture
    if tex.shape[-1] != size:  # bilinear, antialiased when shrinking: as the networks resize T
        tex = torch.nn.functional.interpolate(tex, size=(size, size), mode="bilinear", align_corners=False,
                                              antialias=tex.shape[-1] > size)
    return tex, (tex[:, 3:4] > 0.5).float()
