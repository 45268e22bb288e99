"""The geometry stage's one result type, and the function that runs the whole stage.

:class:`FaceGeometry` holds everything fitting and evaluation need for one photo; it is
saved to (and loaded from) one safetensors file whose metadata carries the camera, the
configuration, the timings and a format tag as JSON. No pickle is involved.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from facerefl.errors import InputError
from facerefl.fsutil import atomic_write
from facerefl.geometry.bake import DEFAULT_DIRECTIONS, VertexBake, bake_maps, bake_vertices
from facerefl.geometry.crop import Crop, crop_to_face
from facerefl.geometry.landmarks import DEFAULT_MIN_FACE_PX, detect_landmarks
from facerefl.geometry.mesh import DEFAULT_FOV_DEG, camera_for_image, face_mesh_from_landmarks
from facerefl.geometry.photo import DEFAULT_MAX_SIDE, load_photo, photo_from_array
from facerefl.geometry.raycast import RayCaster
from facerefl.geometry.template import load_template, skin_uv_mask
from facerefl.geometry.unwrap import DEFAULT_MIN_COS, DEFAULT_RESOLUTION, unwrap
from facerefl.geometry.uvmap import rasterize_uv
from facerefl.render.raster import Camera, GBuffer, Mesh, rasterize
from facerefl.render.texture import sample_texture

__all__ = ["GeometryConfig", "Timings", "FaceGeometry", "build_face_geometry", "FORMAT"]

#: format tag stored in the file metadata (bumped on incompatible changes).
FORMAT = "facerefl.FaceGeometry/1"


@dataclass(frozen=True)
class GeometryConfig:
    """Settings of :func:`build_face_geometry`.

    Attributes:
        resolution: UV texture size R (texture T and baked maps).
        subdivisions: rounds of mesh subdivision (each ×4 triangles) for smoother shading.
        fov_deg: camera field of view across the longer image side, degrees.
        n_dirs: ray directions per vertex for baking (about half are cast).
        min_cos: grazing-angle cut-off for visible texels.
        min_face_px: smallest accepted face width in pixels.
        max_side: photos are downscaled to this longest side on load.
        mirror_guide: guide the hole fill with the mirrored texture.
        raster_backend: image-space rasterizer backend ("torch" or "nvdiffrast").
        crop_margin: work on a square crop around the face, this fraction of the face
            size added on each side; None keeps the whole photo.
        crop_max_side: the crop is shrunk to at most this many pixels per side.
    """

    resolution: int = DEFAULT_RESOLUTION
    subdivisions: int = 1
    fov_deg: float = DEFAULT_FOV_DEG
    n_dirs: int = DEFAULT_DIRECTIONS
    min_cos: float = DEFAULT_MIN_COS
    min_face_px: float = DEFAULT_MIN_FACE_PX
    max_side: int = DEFAULT_MAX_SIDE
    mirror_guide: bool = True
    raster_backend: str = "torch"
    crop_margin: float | None = 0.6
    crop_max_side: int = 1024

    def __post_init__(self) -> None:
        if not 16 <= self.resolution <= 4096:
            raise InputError(f"resolution must be in [16, 4096], got {self.resolution}")
        if not 0 <= self.subdivisions <= 3:
            raise InputError(f"subdivisions must be 0 to 3, got {self.subdivisions}")
        if not 1.0 <= self.fov_deg <= 120.0:
            raise InputError(f"fov_deg must be in [1, 120] degrees, got {self.fov_deg}")
        if self.n_dirs < 16:
            raise InputError(f"n_dirs must be at least 16, got {self.n_dirs}")
        if self.crop_margin is not None and not 0.0 <= self.crop_margin <= 5.0:
            raise InputError(f"crop_margin must be in [0, 5] or None, got {self.crop_margin}")
        if self.crop_max_side < 64:
            raise InputError(f"crop_max_side must be at least 64, got {self.crop_max_side}")


@dataclass(frozen=True)
class Timings:
    """Wall-clock seconds per step of :func:`build_face_geometry`."""

    load: float = 0.0
    landmarks: float = 0.0
    mesh: float = 0.0
    raster: float = 0.0
    unwrap: float = 0.0
    bake: float = 0.0
    total: float = 0.0


@dataclass(frozen=True)
class FaceGeometry:
    """Everything the later stages need about one photo (CPU tensors, float32).

    Image space (the working image, H × W: the photo cropped to the face, see ``crop``):
        photo: ``[3, H, W]`` sRGB in [0, 1].
        landmarks: ``[478, 3]`` pixels (x right, y down) and mediapipe depth (see
            :class:`~facerefl.geometry.landmarks.Landmarks`).
        gbuffer: :class:`~facerefl.render.raster.GBuffer` of ``mesh`` under ``camera``
            (NHWC, B = 1, camera frame).
        face_mask: ``[1, H, W, 1]`` in {0, 1}: pixels on the mesh's valid skin region
            (no eyes, brows or inner mouth) — where the image loss applies.

    Geometry (camera frame, cm):
        mesh: :class:`~facerefl.render.raster.Mesh` with normals.
        camera: its pinhole :class:`~facerefl.render.raster.Camera`.

    UV space (R × R, row 0 at v = 1; NCHW with B = 1, as docs/conventions.md):
        texture: ``[1, 4, R, R]`` T: sRGB colour (Poisson-filled) + valid-skin mask.
        visibility_sh: ``[1, 9, R, R]`` baked visibility SH, camera frame.
        bent_normal: ``[1, 3, R, R]`` unit bent normals, tangent space.
        ao: ``[1, 1, R, R]`` ambient occlusion in [0, 1] (previews, checks).

    Per vertex:
        vertex_bake: the :class:`~facerefl.geometry.bake.VertexBake` the maps come from.

    Bookkeeping:
        crop: where the working image lies in the loaded photo (:class:`~facerefl.geometry.crop.Crop`).
        config: the :class:`GeometryConfig` used; timings: :class:`Timings`.
    """

    photo: torch.Tensor
    landmarks: torch.Tensor
    mesh: Mesh
    camera: Camera
    gbuffer: GBuffer
    face_mask: torch.Tensor
    texture: torch.Tensor
    visibility_sh: torch.Tensor
    bent_normal: torch.Tensor
    ao: torch.Tensor
    vertex_bake: VertexBake
    crop: Crop | None = None
    config: GeometryConfig = field(default_factory=GeometryConfig)
    timings: Timings = field(default_factory=Timings)

    @property
    def mask(self) -> torch.Tensor:
        """``[1, 1, R, R]`` the valid-skin mask channel of ``texture``."""
        return self.texture[:, 3:4]

    def to(self, device=None, dtype=None) -> "FaceGeometry":
        """A copy on ``device`` (float tensors cast to ``dtype`` when given)."""

        def mv(t: torch.Tensor) -> torch.Tensor:
            return t.to(device=device, dtype=dtype if t.is_floating_point() else None)

        vb = self.vertex_bake
        return FaceGeometry(
            photo=mv(self.photo), landmarks=mv(self.landmarks),
            mesh=self.mesh.to(device=device, dtype=dtype), camera=self.camera,
            gbuffer=self.gbuffer.to(device=device, dtype=dtype), face_mask=mv(self.face_mask),
            texture=mv(self.texture), visibility_sh=mv(self.visibility_sh),
            bent_normal=mv(self.bent_normal), ao=mv(self.ao),
            vertex_bake=VertexBake(mv(vb.visibility_sh), mv(vb.bent_normal), mv(vb.ao)),
            crop=self.crop, config=self.config, timings=self.timings,
        )

    # ------------------------------------------------------------------ save / load

    def _tensors(self) -> dict[str, torch.Tensor]:
        out = {
            "photo": self.photo, "landmarks": self.landmarks, "face_mask": self.face_mask,
            "texture": self.texture, "visibility_sh": self.visibility_sh,
            "bent_normal": self.bent_normal, "ao": self.ao,
            "mesh.vertices": self.mesh.vertices, "mesh.faces": self.mesh.faces,
            "mesh.uvs": self.mesh.uvs, "mesh.normals": self.mesh.with_normals().normals,
            "vertex.visibility_sh": self.vertex_bake.visibility_sh,
            "vertex.bent_normal": self.vertex_bake.bent_normal,
            "vertex.ao": self.vertex_bake.ao,
        }
        out.update({f"gbuffer.{k}": v for k, v in self.gbuffer.as_dict().items()})
        return {k: v.detach().cpu().contiguous() for k, v in out.items()}

    def save(self, path: str | Path) -> Path:
        """Write one ``.safetensors`` file atomically (temp file + rename); returns the path."""
        path = Path(path)
        meta = {
            "format": FORMAT,
            "camera": json.dumps(asdict(self.camera)),
            "config": json.dumps(asdict(self.config)),
            "crop": json.dumps(None if self.crop is None else asdict(self.crop)),
            "timings": json.dumps(asdict(self.timings)),
        }
        tensors = self._tensors()
        return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta), make_parents=True)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> "FaceGeometry":
        """Read a file written by :meth:`save`.

        Raises:
            InputError: missing file, or not a FaceGeometry file of this format.
        """
        path = Path(path)
        if not path.is_file():
            raise InputError(f"face geometry file not found: {path}")
        try:
            with safe_open(str(path), framework="pt", device=str(device)) as f:
                meta = f.metadata() or {}
                t = {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError, ValueError) as e:
            raise InputError(f"{path} is not a readable safetensors file ({e})") from e
        if meta.get("format") != FORMAT:
            raise InputError(f"{path} is not a {FORMAT} file (format {meta.get('format')!r}); "
                             "rebuild it with `python -m facerefl.geometry`")
        gb = GBuffer(**{f.name: t[f"gbuffer.{f.name}"] for f in fields(GBuffer)})
        return cls(
            photo=t["photo"], landmarks=t["landmarks"],
            mesh=Mesh(t["mesh.vertices"], t["mesh.faces"], t["mesh.uvs"], t["mesh.normals"]),
            camera=Camera(**json.loads(meta["camera"])), gbuffer=gb, face_mask=t["face_mask"],
            texture=t["texture"], visibility_sh=t["visibility_sh"],
            bent_normal=t["bent_normal"], ao=t["ao"],
            vertex_bake=VertexBake(t["vertex.visibility_sh"], t["vertex.bent_normal"], t["vertex.ao"]),
            crop=None if meta.get("crop") in (None, "null") else Crop(**json.loads(meta["crop"])),
            config=GeometryConfig(**json.loads(meta["config"])),
            timings=Timings(**json.loads(meta["timings"])),
        )


def _image_face_mask(gbuffer: GBuffer, resolution: int) -> torch.Tensor:
    """``[1, H, W, 1]``: covered pixels whose UV falls on the template's skin region."""
    skin = torch.from_numpy(skin_uv_mask(None, resolution)).to(gbuffer.uv.dtype)[None, None]
    on_skin = sample_texture(skin, gbuffer.uv, mode="nearest")
    return (on_skin > 0.5).to(gbuffer.mask.dtype) * gbuffer.mask


def build_face_geometry(photo: str | Path | torch.Tensor | np.ndarray,
                        cfg: GeometryConfig | None = None) -> FaceGeometry:
    """Run the geometry stage on one photo: landmarks → mesh + camera → G-buffer →
    unwrapped texture T → baked occlusion maps.

    Args:
        photo: an image file, or an in-memory image (``[3, H, W]`` float sRGB in [0, 1],
            or ``[H, W, 3]`` uint8).
        cfg: settings (defaults: :class:`GeometryConfig`).

    Returns:
        :class:`FaceGeometry` with a :class:`Timings` breakdown.

    Raises:
        InputError: unreadable photo, no face, face too small, bad settings.
        facerefl.assets.AssetMissingError: the template asset was not fetched.
    """
    cfg = cfg or GeometryConfig()
    t0 = time.perf_counter()
    if isinstance(photo, (str, Path)):
        img = load_photo(photo, max_side=cfg.max_side)
    else:
        img = photo_from_array(photo)
    template = load_template()
    t1 = time.perf_counter()
    lm = detect_landmarks(img, min_face_px=cfg.min_face_px)
    t2 = time.perf_counter()
    cam = camera_for_image(img.shape[1], img.shape[2], cfg.fov_deg)
    crop = Crop.identity(img.shape[1], img.shape[2])
    if cfg.crop_margin is not None:
        img, lm, cam, crop = crop_to_face(img, lm, cam, cfg.crop_margin, cfg.crop_max_side)
    mesh, cam = face_mesh_from_landmarks(lm, template, subdivisions=cfg.subdivisions, camera=cam)
    caster = RayCaster(mesh.vertices, mesh.faces)
    t3 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch's beta-feature notes
        gbuffer = rasterize(mesh, cam, backend=cfg.raster_backend)
    uv_raster = rasterize_uv(mesh.faces, mesh.uvs, cfg.resolution)
    face_mask = _image_face_mask(gbuffer, cfg.resolution)
    t4 = time.perf_counter()
    unwrapped = unwrap(img, mesh, cam, cfg.resolution, min_cos=cfg.min_cos,
                       mirror_guide=cfg.mirror_guide, caster=caster, coverage=gbuffer.mask)
    t5 = time.perf_counter()
    vb = bake_vertices(mesh, cfg.n_dirs, caster)
    maps = bake_maps(vb, uv_raster)
    t6 = time.perf_counter()
    timings = Timings(load=t1 - t0, landmarks=t2 - t1, mesh=t3 - t2, raster=t4 - t3,
                      unwrap=t5 - t4, bake=t6 - t5, total=t6 - t0)
    return FaceGeometry(
        photo=img, landmarks=lm.points, mesh=mesh, camera=cam, gbuffer=gbuffer,
        face_mask=face_mask, texture=unwrapped.texture[None],
        visibility_sh=maps.visibility_sh[None], bent_normal=maps.bent_normal[None],
        ao=maps.ao[None], vertex_bake=vb, crop=crop, config=cfg, timings=timings,
    )
