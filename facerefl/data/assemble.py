"""One synthetic example, end to end (issue 4, part 5).

seed -> procedural reflectance + random scene + augmented real lighting -> bake the
mesh's self-occlusion -> render (fast SH renderer for training, Monte Carlo for the test
set) -> sensor noise and JPEG -> unwrap the photo with the same code real photos use
(known geometry) with Poisson hole filling -> a :class:`ReflectanceBatch` of one example
at the sizes of the preset.

Every random draw comes from a NumPy generator derived from ``(seed, stage)``, so an
example depends only on its seed and the settings: the same seed gives bit-identical
tensors whatever the worker, order or batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from facerefl.data.lighting import LightPrior, LightSettings, load_table
from facerefl.data.procedural import resize_reflectance, sample_params, synthesize
from facerefl.data.render_fast import background, gbuffer_of, render_sh
from facerefl.data.render_mc import EnvSampler, render_mc
from facerefl.data.scene import SceneSettings, sample_scene
from facerefl.data.sensor import SensorSettings, apply_sensor
from facerefl.data.types import ReflectanceBatch
from facerefl.geometry.bake import bake_maps, bake_vertices
from facerefl.geometry.raycast import RayCaster
from facerefl.geometry.template import NUM_VERTICES, Template, load_template
from facerefl.geometry.unwrap import unwrap
from facerefl.geometry.uvmap import rasterize_uv

#: Stage ids of the per-example random streams (never reorder: it changes every example).
_STAGES = {"reflectance": 0, "scene": 1, "light": 2, "sensor": 3, "render": 4}
RENDERERS = ("sh", "mc")
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
    """

    sizes: Sizes = field(default_factory=Sizes)
    renderer: str = "sh"
    spp: int = 64
    bake_dirs: int = 128
    maps: tuple[str, ...] | None = None
    scene: SceneSettings = field(default_factory=SceneSettings)
    light: LightSettings = field(default_factory=LightSettings)
    sensor: SensorSettings = field(default_factory=SensorSettings)

    def __post_init__(self) -> None:
        if self.renderer not in RENDERERS:
            raise ValueError(f"renderer must be one of {RENDERERS}, got {self.renderer!r}")


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

    def __call__(self, seed: int) -> ReflectanceBatch:
        """Example ``seed`` as a batch of one."""
        s, z = self.settings, self.settings.sizes
        master = max(z.texture, z.detail)
        refl = synthesize(sample_params(stage_rng(seed, "reflectance")), master)
        scene = sample_scene(stage_rng(seed, "scene"), self.template, z.image, s.scene)
        light = self.prior.sample(stage_rng(seed, "light"))
        mesh = scene.mesh
        caster = RayCaster(mesh.vertices, mesh.faces)
        vbake = bake_vertices(mesh, s.bake_dirs, caster)
        gbuf = gbuffer_of(scene)
        if s.renderer == "sh":
            baked = bake_maps(vbake, rasterize_uv(mesh.faces, mesh.uvs, master))
            linear = render_sh(scene, gbuf, refl, light, baked.visibility_sh, baked.bent_normal)
        else:
            linear = render_mc(scene, gbuf, refl, EnvSampler.from_light(light),
                               stage_rng(seed, "render"), background(light, scene.camera),
                               spp=s.spp, caster=caster)
        photo = apply_sensor(linear.numpy(), stage_rng(seed, "sensor"), s.sensor)
        photo_t = torch.from_numpy(np.ascontiguousarray(photo.transpose(2, 0, 1)))
        unw = unwrap(photo_t, mesh, scene.camera, resolution=z.texture, caster=caster)
        out_maps = bake_maps(vbake, rasterize_uv(mesh.faces, mesh.uvs, z.texture))
        small = resize_reflectance(refl, z.texture, z.detail)
        cam = scene.camera
        return ReflectanceBatch(
            texture=unw.texture[None],
            albedo=small.albedo[None],
            specular=small.specular[None],
            normal=small.normal[None],
            light=light.sh[None],
            image=photo_t[None],
            uv_mask=unw.visible[None, None].float(),
            vis_sh=out_maps.visibility_sh[None],
            bent_normal=out_maps.bent_normal[None],
            vertices=mesh.vertices[None, :NUM_VERTICES].float(),
            intrinsics=torch.tensor([[cam.fx, cam.fy, cam.cx, cam.cy]], dtype=torch.float32),
            seed=torch.tensor([int(seed)], dtype=torch.int64),
        )
