"""Training renderer: the differentiable rasterizer + SH shading of :mod:`facerefl.render`.

Fast and approximate by design (order-2 SH lighting, split-sum GGX): it is what the
fitting stage inverts, so training data made with it is cheap; the test set is made by
:mod:`facerefl.data.render_mc` instead.
"""

from __future__ import annotations

import torch

from facerefl.data.lighting import LightSample, environment_radiance
from facerefl.data.procedural import Reflectance
from facerefl.data.scene import Scene
from facerefl.render.brdf import DEFAULT_ROUGHNESS
from facerefl.render.raster import Camera, GBuffer, rasterize
from facerefl.render.shading import shade_gbuffer


def camera_rays(camera: Camera, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Unit camera-frame directions through the pixel centres, ``[H, W, 3]``."""
    j = torch.arange(camera.width, dtype=dtype) + 0.5
    i = torch.arange(camera.height, dtype=dtype) + 0.5
    x = ((j - camera.cx) / camera.fx)[None, :].expand(camera.height, -1)
    y = (-(i - camera.cy) / camera.fy)[:, None].expand(-1, camera.width)
    d = torch.stack([x, y, -torch.ones_like(x)], dim=-1)
    return d / d.norm(dim=-1, keepdim=True)


def background(light: LightSample, camera: Camera) -> torch.Tensor:
    """The environment seen behind the head, ``[H, W, 3]`` linear RGB (preview map)."""
    return environment_radiance(light, camera_rays(camera), small=False, bilinear=True).float()


def render_sh(
    scene: Scene,
    gbuf: GBuffer,
    refl: Reflectance,
    light: LightSample,
    vis_sh: torch.Tensor | None = None,
    bent_normal: torch.Tensor | None = None,
    roughness: float = DEFAULT_ROUGHNESS,
    backdrop: torch.Tensor | None = None,
) -> torch.Tensor:
    """Render one synthetic photo with SH lighting, ``[H, W, 3]`` linear RGB.

    Args:
        scene: the posed mesh and camera; ``gbuf`` its G-buffer (``rasterize``).
        refl: reflectance maps (``[3|1, S, S]`` each, any sizes).
        light: the environment; its SH lights the face, its map fills the background.
        vis_sh: optional ``[9, S, S]`` baked visibility SH (camera frame).
        bent_normal: optional ``[3, S, S]`` baked tangent-space bent normals.
        backdrop: ``[H, W, 3]`` image behind the face (default: the light's HDR map).
    """
    out = shade_gbuffer(
        gbuf, refl.albedo[None], refl.specular[None], light.sh[None].to(refl.albedo.dtype),
        normal=refl.normal[None],
        vis_sh=None if vis_sh is None else vis_sh[None],
        bent_normal=None if bent_normal is None else bent_normal[None],
        roughness=roughness,
    )
    m = gbuf.mask[0]
    back = background(light, scene.camera) if backdrop is None else backdrop
    return out.rgb[0] * m + back * (1 - m)


def gbuffer_of(scene: Scene) -> GBuffer:
    """G-buffer of the scene (torch backend: CPU and deterministic)."""
    return rasterize(scene.mesh, scene.camera)
