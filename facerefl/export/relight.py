"""Relit renders: the fitted face under other SH environments and from a new viewpoint.

Rendering uses the project's renderer (:func:`facerefl.render.raster.rasterize` and
:func:`facerefl.render.shading.shade_gbuffer`), so a relit image is exactly what the
fitting loop would render with the same maps.

A new viewpoint is made by orbiting the camera around the head: equivalently, in the
camera frame, the mesh is rotated about its centre by ``R`` and, so that the environment
stays fixed to the world rather than to the camera, the lighting and the baked visibility
SH (both camera-frame) are rotated by the same ``R``. Tangent-space maps (normal, bent
normal) do not change.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from facerefl.render.brdf import DEFAULT_ROUGHNESS
from facerefl.render.color import LUMA
from facerefl.render.maps import ReflectanceMaps
from facerefl.render.raster import Camera, GBuffer, Mesh, project_points, rasterize
from facerefl.render.sh import sh_rotate
from facerefl.render.shading import DEFAULT_SPEC_MODEL, SPEC_MODELS, shade_gbuffer



@dataclass(frozen=True)
class FaceAppearance:
    """Everything needed to render the fitted face (UV maps NCHW without the batch axis).

    Attributes:
        maps: the fitted albedo, specular and tangent-space normal maps of one face
            (``[C, H, W]``, :meth:`ReflectanceMaps.face`).
        vis_sh: ``[9, Ht, Wt]`` baked visibility SH in the camera frame, or None.
        bent_normal: ``[3, Ht, Wt]`` baked tangent-space bent normals, or None.
        roughness: global perceptual roughness in [0, 1].
        ao: ``[1, Ht, Wt]`` baked ambient occlusion in [0, 1], or None; not used for
            rendering (``vis_sh`` already shadows), only exported (``ao.png``, glTF
            ``occlusionTexture``).
        spec_model: the renderer's specular form (``"lobe"`` or ``"paper"``); use the
            one the fit used.
    """

    maps: ReflectanceMaps
    vis_sh: torch.Tensor | None = None
    bent_normal: torch.Tensor | None = None
    roughness: float = DEFAULT_ROUGHNESS
    ao: torch.Tensor | None = None
    spec_model: str = DEFAULT_SPEC_MODEL

    def __post_init__(self) -> None:
        if self.maps.batched:
            raise ValueError("maps must be one face's [C, H, W] maps; take one out of a batch with maps.face(i)")
        for name, ch in (("vis_sh", 9), ("bent_normal", 3), ("ao", 1)):
            t = getattr(self, name)
            if t is not None and (t.ndim != 3 or t.shape[0] != ch):
                raise ValueError(f"{name} must be [{ch}, Ht, Wt], got {tuple(t.shape)}")
        if self.bent_normal is not None and self.vis_sh is None:
            raise ValueError("bent_normal is only used together with vis_sh; pass both or neither")
        if not 0.0 <= self.roughness <= 1.0:
            raise ValueError(f"roughness must be in [0, 1], got {self.roughness}")
        if self.spec_model not in SPEC_MODELS:
            raise ValueError(f"spec_model must be one of {SPEC_MODELS}, got {self.spec_model!r}")


@dataclass(frozen=True)
class View:
    """One rendered image.

    Attributes:
        rgb: ``[3, H, W]`` linear RGB radiance, 0 outside the face.
        mask: ``[1, H, W]`` coverage in {0, 1}.
    """

    rgb: torch.Tensor
    mask: torch.Tensor


def yaw_rotation(degrees: float, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """``[3, 3]`` rotation by ``degrees`` about the camera frame's +y (up) axis.

    Positive angles turn +z (towards the viewer) towards +x (image right), i.e. the head
    turns to its left as seen in the image: the camera orbits to the subject's right.
    """
    a = math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    return torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=dtype, device=device)


def mesh_centre(mesh: Mesh) -> torch.Tensor:
    """Centre of the mesh's axis-aligned bounding box, ``[3]`` camera frame."""
    v = mesh.vertices.detach()
    return 0.5 * (v.amin(dim=0) + v.amax(dim=0))


def face_camera(mesh: Mesh, camera: Camera, size: int, margin: float = 0.15) -> Camera:
    """``camera`` cropped to the face and zoomed so the crop is ``size`` × ``size`` pixels.

    The crop is the square around the bounding box of ``mesh`` projected by ``camera``
    (pixel frame), widened by ``margin`` × its side on each side, so a face that fills
    100 pixels of the photo is rendered ``size`` pixels wide whatever the photo's framing.
    The focal lengths scale and the principal point shifts; the field of view per pixel
    stays square.

    Args:
        mesh: the face, camera frame (in front of the camera, z < 0).
        camera: the photo's camera.
        size: side of the returned camera's image, pixels (> 0).
        margin: room on each side, a fraction of the face box's longer side (≥ 0).

    >>> v = torch.tensor([[-1.0, -1.0, -10.0], [1.0, 1.0, -10.0], [1.0, -1.0, -10.0]])
    >>> cam = face_camera(Mesh(v, torch.tensor([[0, 1, 2]]), torch.zeros(3, 2)),
    ...                   Camera(500.0, 500.0, 320.0, 240.0, 640, 480), 200, margin=0.0)
    >>> cam.width, cam.height, round(cam.fx), round(cam.cx), round(cam.cy)
    (200, 200, 1000, 100, 100)
    """
    if size <= 0:
        raise ValueError(f"size must be > 0, got {size}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    px = project_points(mesh.vertices.detach().double(), camera)
    x0, y0 = (float(v) for v in px[:, :2].amin(0))
    x1, y1 = (float(v) for v in px[:, :2].amax(0))
    side = max(x1 - x0, y1 - y0, 1e-6) * (1 + 2 * margin)
    s = size / side
    left, top = 0.5 * (x0 + x1) - side / 2, 0.5 * (y0 + y1) - side / 2
    return Camera(camera.fx * s, camera.fy * s, (camera.cx - left) * s, (camera.cy - top) * s, size, size)


def rotate_mesh(mesh: Mesh, rot: torch.Tensor, centre: torch.Tensor) -> Mesh:
    """Rotate ``mesh`` by ``rot`` (``[3, 3]``) about ``centre`` (``[3]``); normals follow."""
    rot = rot.to(mesh.vertices)
    centre = centre.to(mesh.vertices)
    verts = (mesh.vertices - centre) @ rot.T + centre
    normals = None if mesh.normals is None else mesh.normals @ rot.T
    return Mesh(verts, mesh.faces, mesh.uvs, normals)


def rotate_sh_map(vis_sh: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """Rotate a ``[9, Ht, Wt]`` SH map (camera frame) by ``rot`` ``[3, 3]``."""
    return sh_rotate(vis_sh.permute(1, 2, 0), rot.to(vis_sh)).permute(2, 0, 1)


def match_exposure(light: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Scale ``light`` (``[3, 9]``) so its mean radiance luminance equals ``reference``'s.

    The mean radiance over the sphere is ``c_00 · Y00``, so the ratio of the band-0
    luminances is the scale. A light whose band-0 luminance is not positive is returned
    unchanged.
    """
    w = torch.tensor(LUMA, dtype=light.dtype, device=light.device)
    mine = (w * light[:, 0]).sum()
    target = (w * reference.to(light)[:, 0]).sum()
    if float(mine) <= 0.0:
        return light
    return light * (target / mine)


def _batched(t: torch.Tensor | None) -> torch.Tensor | None:
    """``[C, H, W]`` map -> detached ``[1, C, H, W]`` (None stays None)."""
    return None if t is None else t.detach()[None]


def shade_view(gbuf: GBuffer, face: FaceAppearance, light: torch.Tensor) -> View:
    """Shade a rasterized face (``gbuf`` with B = 1) under ``light`` (``[3, 9]`` SH, camera frame)."""
    if light.shape != (3, 9):
        raise ValueError(f"light must be [3, 9], got {tuple(light.shape)}")
    maps = face.maps
    out = shade_gbuffer(
        gbuf,
        _batched(maps.albedo),
        _batched(maps.specular),
        light.detach()[None].to(maps.albedo),
        normal=_batched(maps.normal),
        vis_sh=_batched(face.vis_sh),
        bent_normal=_batched(face.bent_normal),
        roughness=face.roughness,
        spec_model=face.spec_model,
    )
    return View(out.rgb[0].permute(2, 0, 1), gbuf.mask[0].permute(2, 0, 1))


def render_views(
    mesh: Mesh, camera: Camera, face: FaceAppearance, lights: Sequence[torch.Tensor], backend: str = "torch"
) -> list[View]:
    """Rasterize once, then shade the face under each of ``lights`` (``[3, 9]`` SH each).

    Device and dtype follow ``mesh`` and the maps (they must agree).

    Returns:
        One :class:`View` of size ``camera.height x camera.width`` per light.
    """
    for light in lights:
        if light.shape != (3, 9):
            raise ValueError(f"each light must be [3, 9], got {tuple(light.shape)}")
    if not lights:
        return []
    gbuf = rasterize(mesh.with_normals(), camera, backend=backend)
    return [shade_view(gbuf, face, light) for light in lights]


def render_view(
    mesh: Mesh, camera: Camera, face: FaceAppearance, light: torch.Tensor, backend: str = "torch"
) -> View:
    """Rasterize and shade the face under one ``light``; see :func:`render_views`."""
    return render_views(mesh, camera, face, [light], backend)[0]


def render_orbit(
    mesh: Mesh,
    camera: Camera,
    face: FaceAppearance,
    light: torch.Tensor,
    yaw_degrees: float,
    backend: str = "torch",
) -> View:
    """The face seen from a camera orbited by ``yaw_degrees`` about the head centre.

    The lighting and visibility SH turn with the head (module docstring), so the scene's
    environment stays where it was.
    """
    rot = yaw_rotation(yaw_degrees, dtype=mesh.vertices.dtype, device=mesh.vertices.device)
    turned = rotate_mesh(mesh.with_normals(), rot, mesh_centre(mesh))
    vis = None if face.vis_sh is None else rotate_sh_map(face.vis_sh.detach(), rot)
    turned_face = replace(face, vis_sh=vis)
    return render_view(turned, camera, turned_face, sh_rotate(light.detach(), rot.to(light)), backend=backend)
