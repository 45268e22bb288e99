"""Photo → UV texture T (section 5.1.1): sRGB colour plus a mask of visible skin.

For every texel of the template's UV layout the matching surface point is projected into
the photo. A texel is *visible* when that point faces the camera (cosine between normal
and view direction above ``min_cos``), lands inside the image, is not hidden behind
another part of the face (a ray from the point towards the camera hits nothing) and its
bilinear lookup reads only pixels the mesh covers (no background at the silhouette). Visible
texels take the photo's colour (bilinear); the others inside the layout are filled by
Poisson blending (section 7.2.1) guided by the mirrored texture, since the UV layout is
left–right symmetric, so a face turned aside borrows the detail of its visible half while
matching the colours around the hole. The 4th channel is the valid-skin mask: skin region
of the template and visible.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from facerefl.geometry.poisson import poisson_fill
from facerefl.geometry.raycast import RayCaster
from facerefl.geometry.template import skin_uv_mask
from facerefl.geometry.uvmap import UVRaster, interpolate_texels, rasterize_uv
from facerefl.render.raster import Camera, Mesh, project_points, rasterize_visibility

__all__ = ["DEFAULT_RESOLUTION", "DEFAULT_MIN_COS", "Unwrapped", "texel_visibility", "unwrap"]

DEFAULT_RESOLUTION = 256  # conf/optimize.yaml geometry.resolution (tests/test_config_defaults.py)
#: texels seen at a grazing angle (cos < this) are treated as hidden: their colour would
#: be smeared over many texels from a pixel or two.
DEFAULT_MIN_COS = 0.15


@dataclass(frozen=True)
class Unwrapped:
    """Result of :func:`unwrap` (UV space, ``R × R``, row 0 at v = 1).

    Attributes:
        texture: ``[4, R, R]`` float32. Channels 0–2: sRGB in [0, 1], photo colour where
            visible, Poisson-filled elsewhere in the layout and its gutter
            (:func:`~facerefl.geometry.uvmap.pad_width` texels), 0 beyond. Channel 3: the
            valid-skin mask in {0, 1} (skin region and visible).
        visible: ``[R, R]`` bool texels seen in the photo.
        covered: ``[R, R]`` bool texels inside the UV layout.
    """

    texture: torch.Tensor
    visible: torch.Tensor
    covered: torch.Tensor

    @property
    def mask(self) -> torch.Tensor:
        """``[R, R]`` bool valid skin (channel 3 of ``texture``)."""
        return self.texture[3] > 0.5


def texel_visibility(mesh: Mesh, camera: Camera, raster: UVRaster,
                     min_cos: float = DEFAULT_MIN_COS,
                     caster: RayCaster | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Where the covered texels land in the photo, and whether the photo sees them.

    Args:
        mesh: camera-frame mesh (normals used when present).
        camera: its camera.
        raster: the mesh's UV raster.
        min_cos: smallest accepted cosine between the normal and the view direction.
        caster: a :class:`RayCaster` on the same mesh, to reuse one (built if None).

    Returns:
        ``pix [N, 2]`` float64 pixel coordinates (x right, y down) of the surface point of
        each covered texel (order of ``raster.texels``) and ``visible [N]`` bool.
    """
    mesh = mesh.with_normals()
    pos = interpolate_texels(raster, mesh.vertices)
    nrm = interpolate_texels(raster, mesh.normals)
    nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
    dist = np.maximum(np.linalg.norm(pos, axis=1, keepdims=True), 1e-12)
    view = -pos / dist
    scr = project_points(torch.from_numpy(pos), camera).numpy()
    visible = (scr[:, 0] >= 0) & (scr[:, 0] <= camera.width) & (scr[:, 1] >= 0) \
        & (scr[:, 1] <= camera.height) & (scr[:, 2] > 0) & ((nrm * view).sum(1) > min_cos)
    if visible.any():
        caster = caster or RayCaster(mesh.vertices, mesh.faces)
        # Start a hair off the surface so the ray does not hit its own triangle.
        origins = pos[visible] + view[visible] * (1e-4 * caster.scale)
        visible[visible] = ~caster.hits(origins, view[visible])
    return scr[:, :2], visible


def _footprint_covered(pix: np.ndarray, coverage: np.ndarray) -> np.ndarray:
    """``[N]`` bool: all 4 pixels a bilinear lookup at ``pix [N, 2]`` reads are covered."""
    h, w = coverage.shape
    x0 = np.floor(pix[:, 0] - 0.5).astype(np.int64)
    y0 = np.floor(pix[:, 1] - 0.5).astype(np.int64)
    ok = np.ones(pix.shape[0], bool)
    for dy in (0, 1):
        for dx in (0, 1):
            ok &= coverage[np.clip(y0 + dy, 0, h - 1), np.clip(x0 + dx, 0, w - 1)]
    return ok


def _sample_photo(photo: torch.Tensor, pix: np.ndarray) -> np.ndarray:
    """Bilinear photo colour ``[N, 3]`` float64 at pixel coordinates ``pix [N, 2]``."""
    img = np.ascontiguousarray(photo.detach().cpu().float().permute(1, 2, 0).numpy())
    n = pix.shape[0]
    cols = 1024  # cv2.remap wants maps shorter than 32767 per side: fold the list
    rows = -(-n // cols)
    maps = np.zeros((2, rows * cols), np.float32)
    # cv2 puts pixel centres at integers; ours are at +0.5.
    maps[:, :n] = (pix - 0.5).T
    out = cv2.remap(img, maps[0].reshape(rows, cols), maps[1].reshape(rows, cols),
                    cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(-1, 3)[:n].astype(np.float64)


def unwrap(photo: torch.Tensor, mesh: Mesh, camera: Camera,
           resolution: int = DEFAULT_RESOLUTION, skin: np.ndarray | torch.Tensor | None = None,
           min_cos: float = DEFAULT_MIN_COS, mirror_guide: bool = True,
           caster: RayCaster | None = None, coverage: torch.Tensor | None = None) -> Unwrapped:
    """Unwrap a photo onto the mesh's UV layout.

    Args:
        photo: ``[3, H, W]`` sRGB in [0, 1] (H, W must match ``camera``).
        mesh: the face mesh in the camera frame (e.g. from
            :func:`~facerefl.geometry.mesh.face_mesh_from_landmarks`, or known synthetic
            geometry), with the template's UV layout.
        camera: the photo's camera.
        resolution: texture size R.
        skin: ``[R, R]`` bool skin region in UV; default the template's
            (:func:`~facerefl.geometry.template.skin_uv_mask`).
        min_cos: grazing-angle cut-off, see :func:`texel_visibility`.
        mirror_guide: guide the hole fill with the left–right mirrored texture.
        caster: optional :class:`RayCaster` on ``mesh`` to reuse.
        coverage: optional ``[H, W]`` (or G-buffer ``[1, H, W, 1]``) mask of the pixels the
            mesh covers in the photo; computed when None. Texels whose bilinear lookup
            would read an uncovered pixel (background at the mesh's silhouette) count as
            hidden.

    Returns:
        :class:`Unwrapped`.
    """
    if photo.ndim != 3 or photo.shape[0] != 3:
        raise ValueError(f"photo must be [3, H, W], got {tuple(photo.shape)}")
    if (photo.shape[1], photo.shape[2]) != (camera.height, camera.width):
        raise ValueError(f"photo is {tuple(photo.shape[1:])} but the camera is "
                         f"{(camera.height, camera.width)}")
    raster = rasterize_uv(mesh.faces, mesh.uvs, resolution)
    if skin is None:
        skin = skin_uv_mask(None, resolution)
    skin = torch.as_tensor(np.asarray(skin, dtype=bool))
    if skin.shape != (resolution, resolution):
        raise ValueError(f"skin mask must be [{resolution}, {resolution}], got {tuple(skin.shape)}")
    pix, vis_t = texel_visibility(mesh, camera, raster, min_cos, caster)
    if coverage is None:
        coverage = rasterize_visibility(mesh, camera)[0] >= 0
    cov = coverage.detach().cpu().reshape(camera.height, camera.width).numpy() > 0.5
    vis_t &= _footprint_covered(pix, cov)
    r = resolution
    rgb = np.zeros((r * r, 3))
    rgb[raster.texels.numpy()] = _sample_photo(photo, pix)
    rgb = rgb.reshape(r, r, 3)
    vis = np.zeros(r * r, bool)
    vis[raster.texels.numpy()] = vis_t
    vis = vis.reshape(r, r)
    visible = torch.from_numpy(vis)
    domain = raster.padded.numpy()
    if not vis.any():
        raise ValueError("no texel of the face is visible in the photo")
    guide = guide_ok = None
    if mirror_guide:
        guide, guide_ok = rgb[:, ::-1], vis[:, ::-1]
    filled = poisson_fill(rgb, vis, domain, guide, guide_ok)
    tex = torch.from_numpy(np.clip(filled, 0.0, 1.0).astype(np.float32)).permute(2, 0, 1)
    mask = (skin & visible).to(torch.float32)[None]
    return Unwrapped(torch.cat([tex, mask], 0).contiguous(), visible, raster.covered)

