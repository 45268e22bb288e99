"""One call that writes every output of a fit: :func:`write_all`.

Files written into ``out_dir`` (all atomically; see the writer modules for encodings):

* inputs — ``photo.png`` (sRGB) and, when given, ``texture.png`` (unwrapped T, alpha = skin mask);
* reflectance maps — ``albedo.png`` (sRGB 8-bit), ``albedo_linear16.png``, ``albedo.exr``,
  ``specular.png`` / ``specular_linear16.png`` / ``specular.exr`` (linear),
  ``normal.png`` / ``normal16.png`` (``(n + 1) / 2``), ``normal.exr`` (raw), and when the
  baked occlusion is given ``ao.png`` (linear 8-bit); linear PNGs are tagged as linear;
* lighting — ``light.json`` (27 SH coefficients + convention), ``light_probe.png``
  (tone-mapped preview);
* reconstruction — ``reconstruction.png`` (sRGB rendering, alpha = face mask),
  ``composite.png`` (rendering over the photo), ``side_by_side.png``
  (photo | composite | 4 x abs difference);
* relighting — ``relit_<name>.png`` per named environment and ``novel_view_yaw<deg>.png``
  (sRGB, alpha = face mask);
* meshes — ``face.glb`` (glTF 2.0, PBR + KHR_materials_specular), ``face.obj`` + ``face.mtl``;
* optimisation — ``loss.png``, ``metrics.json``;
* ``report.html`` — everything above on one self-contained page (written last).

Wiring from the fitting stage (``geo`` a ``FaceGeometry``, ``res`` a ``FitResult``,
``settings`` the ``FitSettings``; batch index 0)::

    face = FaceAppearance(res.maps.face(0), geo.visibility_sh[0], geo.bent_normal[0],
                          settings.roughness, ao=geo.ao[0], spec_model=settings.spec_model)
    out = FitOutputs(geo.photo, face, res.light[0], geo.mesh, geo.camera,
                     loss_history=tuple(res.losses), metrics={...}, timings={...},
                     texture=geo.texture[0])
    files = write_all(out, prepare_output_dir(path, overwrite), environments=named_lights)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from facerefl.errors import InputError
from facerefl.export.compose import composite_over_photo, rgba_rendering, side_by_side
from facerefl.export.gltf import PbrTextures, write_glb
from facerefl.export.images import save_png
from facerefl.export.light import light_probe_image, save_light_json
from facerefl.export.maps import save_reflectance_maps
from facerefl.export.obj import write_obj
from facerefl.export.plots import save_loss_plot, save_metrics_json, strict_json
from facerefl.export.relight import (
    FaceAppearance,
    View,
    face_camera,
    match_exposure,
    render_orbit,
    render_view,
    render_views,
)
from facerefl.export.report import Picture, Section, Table, save_report
from facerefl.export.surface import head_centre, surface_from_mesh, to_asset_frame
from facerefl.render.brdf import F0_MAX
from facerefl.render.raster import Camera, Mesh

_NAME_OK = re.compile(r"[^a-z0-9_-]+")


@dataclass(frozen=True)
class FitOutputs:
    """The result of fitting one photo, as the exporters need it (no batch axis).

    Attributes:
        photo: ``[3, H, W]`` the input photo, sRGB in [0, 1].
        face: fitted reflectance maps (UV space) + baked visibility, roughness, AO.
        light: ``[3, 9]`` fitted SH incident radiance, linear RGB, camera frame.
        mesh: the face mesh in the camera frame (units: cm from the geometry stage).
        camera: the photo's pinhole camera (``width x height`` = ``W x H``).
        rendering: ``[3, H, W]`` the final reconstruction, linear RGB (0 off the face),
            or None to render it here from ``face``, ``light``, ``mesh`` and ``camera``.
        mask: ``[1, H, W]`` coverage of ``rendering`` in [0, 1]; given with ``rendering``.
        loss_history: loss per iteration.
        metrics: named scalar metrics (PSNR, SSIM, ...).
        timings: named durations in seconds.
        texture: ``[4, Ht, Wt]`` the unwrapped photo texture T (sRGB RGB + skin mask in
            {0, 1}), or None; written as ``texture.png`` with the mask as alpha.
    """

    photo: torch.Tensor
    face: FaceAppearance
    light: torch.Tensor
    mesh: Mesh
    camera: Camera
    rendering: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    loss_history: tuple[float, ...] = ()
    metrics: Mapping[str, float | str] = field(default_factory=dict)
    timings: Mapping[str, float] = field(default_factory=dict)
    texture: torch.Tensor | None = None

    def __post_init__(self) -> None:
        h, w = self.camera.height, self.camera.width
        if (self.rendering is None) != (self.mask is None):
            raise ValueError("pass rendering and mask together, or neither (then write_all renders them)")
        for name, ch in (("photo", 3), ("rendering", 3), ("mask", 1)):
            t = getattr(self, name)
            if t is not None and tuple(t.shape) != (ch, h, w):
                raise ValueError(f"{name} must be [{ch}, {h}, {w}] (camera size), got {tuple(t.shape)}")
        if tuple(self.light.shape) != (3, 9):
            raise ValueError(f"light must be [3, 9], got {tuple(self.light.shape)}")
        if self.texture is not None and (self.texture.ndim != 3 or self.texture.shape[0] != 4):
            raise ValueError(f"texture must be [4, Ht, Wt] (sRGB + skin mask), got {tuple(self.texture.shape)}")


@dataclass(frozen=True)
class ExportOptions:
    """How :func:`write_all` renders and encodes.

    Attributes:
        novel_yaw_degrees: camera orbit for the new-viewpoint render (0 disables it).
        match_exposure: scale each named environment to the fitted light's mean
            luminance, so relit renders are exposed like the reconstruction.
        metres_per_unit: mesh units to metres for ``face.glb`` (geometry works in cm).
        diff_gain: gain on the absolute difference in ``side_by_side.png``.
        probe_size: diameter in pixels of each light-probe sphere.
        exr: also write the float EXR maps.
        backend: rasterizer backend for relit renders (``"torch"`` or ``"nvdiffrast"``).
        relit_face_size: relit and new-view images are framed on the face (the photo's
            camera cropped to the mesh's projected box plus a margin,
            :func:`~facerefl.export.relight.face_camera`) and rendered this many pixels
            square; 0: the photo's whole frame, scaled by ``relit_max_size``.
        relit_max_size: with ``relit_face_size`` 0, relit and new-view images are rendered
            with the camera scaled so that neither side exceeds this many pixels (0: the
            photo's size).
        title: report heading.
    """

    novel_yaw_degrees: float = 30.0
    match_exposure: bool = True
    metres_per_unit: float = 0.01
    diff_gain: float = 4.0
    probe_size: int = 128
    exr: bool = True
    backend: str = "torch"
    relit_face_size: int = 512
    relit_max_size: int = 1024
    title: str = "facerefl reconstruction report"


def environment_file_name(name: str) -> str:
    """``relit_<slug>.png`` for an environment called ``name`` (lower case, [a-z0-9_-])."""
    slug = _NAME_OK.sub("_", name.lower()).strip("_")
    if not slug:
        raise ValueError(f"environment name {name!r} has no usable characters for a file name")
    return f"relit_{slug}.png"


def relit_camera(camera: Camera, max_size: int) -> Camera:
    """``camera`` scaled down so that neither image side exceeds ``max_size`` (0: unchanged)."""
    if max_size < 0:
        raise ValueError(f"relit_max_size must be >= 0, got {max_size}")
    longest = max(camera.width, camera.height)
    if max_size == 0 or longest <= max_size:
        return camera
    return camera.scaled(max_size / longest)


def _named_environments(
    environments: Mapping[str, torch.Tensor], like: torch.Tensor
) -> list[tuple[str, str, torch.Tensor]]:
    """Validate the named lights: ``(file name, name, [3, 9] light)`` each, before any write."""
    checked = []
    seen: dict[str, str] = {}
    for name, env in environments.items():
        env = torch.as_tensor(env)
        if env.numel() != 27:
            raise ValueError(
                f"environment {name!r} must be a [3, 9] SH light (27 numbers), got shape {tuple(env.shape)}"
            )
        fname = environment_file_name(name)
        if fname in seen:
            raise ValueError(f"environments {seen[fname]!r} and {name!r} map to the same file {fname}")
        seen[fname] = name
        checked.append((fname, name, env.reshape(3, 9).to(like)))
    return checked


def _render_all(
    out: FitOutputs, environments: list[tuple[str, str, torch.Tensor]], opts: ExportOptions
) -> tuple[View | None, list[tuple[str, str, View]]]:
    """The reconstruction (None when given) and ``(file name, caption, view)`` for each
    named environment and the new viewpoint; views sharing a camera share one rasterization."""
    camera = (face_camera(out.mesh, out.camera, opts.relit_face_size) if opts.relit_face_size > 0
              else relit_camera(out.camera, opts.relit_max_size))
    lights = [match_exposure(env, out.light) if opts.match_exposure else env for _, _, env in environments]
    recon = None
    if out.rendering is None and camera == out.camera:
        recon, *env_views = render_views(out.mesh, camera, out.face, [out.light, *lights], opts.backend)
    else:
        if out.rendering is None:
            recon = render_view(out.mesh, out.camera, out.face, out.light, opts.backend)
        env_views = render_views(out.mesh, camera, out.face, lights, opts.backend)
    views = [(fname, f"environment {name!r}", v) for (fname, name, _), v in zip(environments, env_views)]
    if opts.novel_yaw_degrees:
        deg = opts.novel_yaw_degrees
        fname = f"novel_view_yaw{deg:+g}.png".replace("+", "p").replace("-", "m")
        view = render_orbit(out.mesh, camera, out.face, out.light, deg, opts.backend)
        views.append((fname, f"camera orbited {deg:g} degrees about the head, fitted light", view))
    return recon, views


def _fmt_rows(values: Mapping[str, float | str]) -> tuple[tuple[str, float | str | None], ...]:
    return tuple((str(k), strict_json(v)) for k, v in values.items())


#: report labels of the fitting metrics, in table order (others follow under their own key)
_METRIC_LABELS = {
    "psnr_initial": "PSNR, encoders only (dB, face region)",
    "psnr_latent": "PSNR after the latent fit (dB)",
    "psnr_final": "PSNR, final (dB)",
    "psnr_gain": "PSNR gain, final - encoders (dB)",
    "ssim_initial": "SSIM, encoders only",
    "ssim_latent": "SSIM after the latent fit",
    "ssim_final": "SSIM, final",
    "iterations": "latent iterations",
    "refine_iterations": "albedo-refinement iterations",
    "best_iteration": "state kept",
    "loss_initial": "loss, encoders only",
    "loss_final": "loss of the state kept",
    "ms_per_iteration": "ms per latent iteration",
    "face_pixels": "face pixels fitted",
}


def _best_step(m: Mapping[str, float | str]) -> str:
    """Where the kept state lies: ``best_iteration`` counts the latent steps (0 = the
    encoders' start) and then the refinement steps in one sequence."""
    best, latent = int(m["best_iteration"]), int(m.get("iterations", 0))
    if best <= latent:
        return f"latent step {best} of {latent}"
    return f"refinement step {best - latent} of {int(m.get('refine_iterations', 0))}"


def metric_rows(metrics: Mapping[str, float | str]) -> tuple[tuple[str, float | str | None], ...]:
    """The report's metrics table: labelled rows, one PSNR per phase (the per-pixel
    variants ``psnr_*_pixels`` measure the same fit on the loss pixels only and stay in
    ``metrics.json``), and the kept state named by phase instead of a bare index."""
    rows = []
    for key, label in _METRIC_LABELS.items():
        if key not in metrics:
            continue
        value = _best_step(metrics) if key == "best_iteration" else strict_json(metrics[key])
        rows.append((label, value))
    rows += [(str(k), strict_json(v)) for k, v in metrics.items()
             if k not in _METRIC_LABELS and not str(k).endswith("_pixels")]
    return tuple(rows)


def _report_sections(out_dir: Path, out: FitOutputs, relit: list[tuple[str, str, View]],
                     opts: ExportOptions) -> list[Section]:
    def pic(name: str, title: str, caption: str = "", width: int = 0) -> Picture:
        return Picture(title, (out_dir / name).read_bytes(), caption, width)

    light_rows = tuple(
        (f"{'RGB'[c]}", *[float(v) for v in out.light[c].tolist()]) for c in range(3)
    )
    inputs = [pic("photo.png", "photo", "sRGB")]
    if out.texture is not None:
        caption = "sRGB, UV space; transparent outside the skin mask"
        inputs.append(pic("texture.png", "unwrapped texture T", caption, 256))
    sections = [
        Section("Input", pictures=tuple(inputs)),
        Section(
            "Reconstruction",
            text="Rendering composited over the photo; the difference image shows "
            f"{opts.diff_gain:g} x |photo - composite|.",
            pictures=(
                pic("composite.png", "composite", "rendering inside the face mask, photo outside"),
                pic("side_by_side.png", "photo | reconstruction | difference"),
            ),
        ),
        Section(
            "Reflectance maps (UV space)",
            pictures=(
                pic("albedo.png", "albedo", "sRGB-encoded", 256),
                pic("specular.png", "specular t_r", f"linear; F0 = {F0_MAX:g} x t_r", 256),
                pic("normal.png", "normal", "tangent space, (n + 1) / 2", 256),
                *([pic("ao.png", "ambient occlusion", "baked, linear", 256)] if out.face.ao is not None else []),
            ),
        ),
        Section(
            "Lighting",
            text="Order-2 SH incident radiance, linear RGB, camera frame "
            "(+x right, +y up, +z towards the viewer). "
            "Probe: a white Lambertian sphere and a mirror ball, exposed so the brightest "
            "1 % of the mirror ball reaches the shoulder of a Reinhard tone curve "
            "(light.json holds the values).",
            pictures=(pic("light_probe.png", "light probe", "diffuse sphere | mirror ball"),),
            tables=(Table(("", "Y00", "Y1-1", "Y10", "Y11", "Y2-2", "Y2-1", "Y20", "Y21", "Y22"), light_rows),),
        ),
    ]
    if relit:
        note = "Environments scaled to the fitted light's mean luminance." if opts.match_exposure else ""
        sections.append(Section("Relighting and new viewpoint", text=note,
                                pictures=tuple(pic(f, f.removesuffix(".png"), c) for f, c, _ in relit)))
    if out.loss_history:
        sections.append(Section("Optimisation", pictures=(pic("loss.png", "loss against iteration"),)))
    sections.append(Section("Metrics", tables=(Table(("metric", "value"), metric_rows(out.metrics)),)))
    sections.append(Section("Timings", tables=(Table(("stage", "seconds"), _fmt_rows(out.timings)),)))
    return sections


def _write_inputs_maps_light(out: FitOutputs, out_dir: Path, options: ExportOptions) -> list[Path]:
    """Photo, unwrapped texture, reflectance maps, AO, ``light.json`` and the light probe."""
    written = [save_png(out_dir / "photo.png", out.photo)]
    if out.texture is not None:
        written.append(save_png(out_dir / "texture.png", out.texture))
    written += save_reflectance_maps(out_dir, out.face.maps, exr=options.exr)
    if out.face.ao is not None:
        written.append(save_png(out_dir / "ao.png", out.face.ao, linear=True))
    written.append(save_light_json(out_dir / "light.json", out.light))
    probe = light_probe_image(out.light, options.probe_size)
    written.append(save_png(out_dir / "light_probe.png", probe, srgb_encode=True))
    return written


def _write_renders(
    out: FitOutputs, out_dir: Path, named: list[tuple[str, str, torch.Tensor]], options: ExportOptions
) -> tuple[list[tuple[str, str, View]], list[Path]]:
    """Reconstruction, composite, side-by-side and the relit views; returns the views too."""
    recon, relit = _render_all(out, named, options)
    rendering, mask = (out.rendering, out.mask) if recon is None else (recon.rgb, recon.mask)
    composite = composite_over_photo(rendering, out.photo, mask)
    written = [
        save_png(out_dir / "reconstruction.png", rgba_rendering(rendering, mask)),
        save_png(out_dir / "composite.png", composite),
        save_png(out_dir / "side_by_side.png", side_by_side(out.photo, composite, options.diff_gain)),
    ]
    written += [save_png(out_dir / f, rgba_rendering(v.rgb, v.mask)) for f, _, v in relit]
    return relit, written


def _write_meshes(out: FitOutputs, out_dir: Path, options: ExportOptions) -> list[Path]:
    """``face.glb`` and ``face.obj`` + ``face.mtl``, centred, in metres."""
    maps = out.face.maps
    camera_surface = surface_from_mesh(out.mesh)
    surface = to_asset_frame(camera_surface, options.metres_per_unit)
    textures = PbrTextures(maps.albedo, maps.specular, maps.normal, out.face.roughness, F0_MAX, out.face.ao)
    centre_m = head_centre(camera_surface.positions) * options.metres_per_unit
    placement = {
        "camera_frame_centre_m": [float(v) for v in centre_m],
        "note": "add camera_frame_centre_m to the positions to put the face back in the photo's camera frame",
    }
    written = [write_glb(out_dir / "face.glb", surface, textures, extras=placement)]
    written += write_obj(out_dir / "face.obj", surface, roughness=out.face.roughness, specular_f0=F0_MAX)
    return list(written)


def write_all(
    out: FitOutputs,
    out_dir: str | Path,
    environments: Mapping[str, torch.Tensor] | None = None,
    options: ExportOptions = ExportOptions(),
) -> list[Path]:
    """Write every output listed in the module docstring into the existing ``out_dir``.

    Args:
        out: the fit result.
        out_dir: an existing folder (see :func:`facerefl.export.atomic.prepare_output_dir`).
        environments: named SH lights ``{name: [3, 9]}`` (camera frame, linear RGB) for
            the relit renders, e.g. from the data stage's HDR table.
        options: rendering and encoding choices.

    Returns:
        The paths written, in order (``report.html`` last).

    Raises:
        InputError: ``out_dir`` does not exist.
        ValueError: an environment is not 27 numbers, or two names give the same file.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise InputError(f"output folder {out_dir} does not exist; create it with prepare_output_dir() first")
    named = _named_environments(environments or {}, out.light)
    written = _write_inputs_maps_light(out, out_dir, options)
    relit, renders = _write_renders(out, out_dir, named, options)
    written += renders
    written += _write_meshes(out, out_dir, options)
    if out.loss_history:
        written.append(save_loss_plot(out_dir / "loss.png", out.loss_history))
    written.append(save_metrics_json(out_dir / "metrics.json", out.metrics, out.timings, out.loss_history))

    sections = _report_sections(out_dir, out, relit, options)
    names = [p.name for p in written] + ["report.html"]
    written.append(save_report(out_dir / "report.html", options.title, sections, names))
    return written
