"""``optimize(cfg)``: fit one photo or a folder of photos and write every output.

The entry script ``optimize.py`` is a thin Hydra wrapper around :func:`optimize`; tests
call the function with a composed config. Per photo: geometry (landmarks, mesh, unwrap,
bake) → encoders → latent optimization → exports (:func:`facerefl.export.write_all`).

A folder is fitted photo by photo; a failure (unreadable file, no face, ...) is reported
and the rest go on; a summary table ends the run. With ``distributed.enabled=true`` the
photos are sharded across devices and nodes by Lightning's predict loop
(:mod:`facerefl.tasks.predict`) instead of the local loop.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from facerefl.assets import AssetMissingError
from facerefl.data.lighting import load_table
from facerefl.errors import InputError
from facerefl.export.atomic import check_output_dir
from facerefl.export.outputs import ExportOptions, FitOutputs, write_all
from facerefl.export.plots import save_metrics_json
from facerefl.export.relight import FaceAppearance
from facerefl.fit.delight import DelightSettings
from facerefl.fit.loop import GAUGE_LEVELS, LR_SCHEDULES, FitSettings
from facerefl.fit.pipeline import PhotoFit, fit_geometry
from facerefl.fsutil import LockedError, atomic_write_text, folder_lock, recover_stale, replace_dir, sibling
from facerefl.geometry.result import GeometryConfig, build_face_geometry
from facerefl.models.networks import ReflectanceNetworks, shipped_dir
from facerefl.tasks.cli import (
    escape_interpolation,
    one_line,
    os_error_message,
    read_bool,
    read_choice,
    read_device,
    read_float,
    read_int,
)

log = logging.getLogger(__name__)

__all__ = ["PhotoReport", "optimize", "optimize_command", "resolve_inputs", "fit_one", "load_networks",
           "output_dirs", "run_record"]

#: what ``fit.optimize`` may list
_OPTIMIZABLE = ("albedo", "specular", "normal", "light")


@dataclass
class PhotoReport:
    """One row of the run summary."""

    image: str
    ok: bool
    output_dir: str | None = None
    error: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def _printable(text: str) -> str:
    """``text`` safe to print on any terminal encoding (undecodable file-name bytes escaped)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def resolve_inputs(image: Any) -> tuple[list[Path], bool]:
    """The photos to fit, and whether ``image`` named a folder.

    A folder contributes every regular file in it (sorted), images or not, so that a
    stray non-image is reported as a failure rather than silently skipped; hidden files
    are ignored.
    """
    if image is None or str(image).strip() == "":
        raise InputError("no input given; run `python optimize.py PHOTO` or `python optimize.py image=PATH` "
                         "(a photo or a folder)")
    if not isinstance(image, str):
        raise InputError(f"image must be a path, got {image!r}; quote it or pass it as a plain argument")
    path = Path(image).expanduser()
    try:
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
            if not files:
                raise InputError(f"folder {path} holds no files to fit")
            return files, True
    except PermissionError as e:
        raise InputError(f"cannot read folder {path}: permission denied") from e
    if not path.exists():
        raise InputError(f"input {path} does not exist")
    return [path], False


def load_networks(cfg: DictConfig) -> ReflectanceNetworks:
    """The frozen inference networks: ``cfg.weights``, or the shipped weights the preset
    names (``cfg.checkpoint``, e.g. ``cpu_x10``).

    Raises:
        InputError: the folder is missing, incomplete or holds damaged files.
    """
    folder = Path(cfg.weights) if cfg.get("weights") else shipped_dir(str(cfg.get("checkpoint") or cfg.preset))
    try:
        nets = ReflectanceNetworks.from_safetensors(folder, map_location=cfg.device)
    except (InputError, AssetMissingError):
        raise
    except Exception as e:  # noqa: BLE001 - safetensors, json and torch each raise their own types
        raise InputError(f"cannot load the weights in {folder} ({type(e).__name__}: {one_line(e)}); "
                         "restore them (`make setup`) or pass weights=FOLDER") from e
    return nets.freeze()


def fit_settings(cfg: DictConfig) -> FitSettings:
    """The fitting settings of ``cfg``, every value checked (:class:`InputError` names the bad one)."""
    f = cfg.fit
    betas = f.betas
    if not OmegaConf.is_list(betas) or len(betas) != 2:
        raise InputError(f"fit.betas must be two numbers [b1, b2], got {betas}")
    optimize = f.optimize
    if not OmegaConf.is_list(optimize) or not optimize:
        raise InputError(f"fit.optimize must be a list drawn from {list(_OPTIMIZABLE)}, got {optimize}")
    for item in optimize:
        read_choice(item, "fit.optimize entries", _OPTIMIZABLE)
    return FitSettings(
        iterations=read_int(cfg.iterations, "iterations", 0, 1_000_000),
        lr=read_float(f.lr, "fit.lr", 0.0, exclusive_minimum=True),
        betas=tuple(read_float(b, "fit.betas", 0.0, 0.999999) for b in betas),
        optimize=tuple(optimize),
        lr_schedule=read_choice(f.lr_schedule, "fit.lr_schedule", LR_SCHEDULES),
        lr_end=read_float(f.lr_end, "fit.lr_end", 0.0, 1.0),
        early_stop=read_bool(f.early_stop, "fit.early_stop"),
        tol=read_float(f.tol, "fit.tol", 0.0),
        patience=read_int(f.patience, "fit.patience", 1),
        enhanced_iterations=(None if f.enhanced_iterations is None else
                             read_int(f.enhanced_iterations, "fit.enhanced_iterations", 0, 1_000_000)),
        coarse_max_gain=read_float(f.coarse_max_gain, "fit.coarse_max_gain", 0.0),
        roughness=read_float(f.roughness, "fit.roughness", 0.0, 1.0, exclusive_minimum=True),
        spec_model=read_choice(f.spec_model, "fit.spec_model", ("lobe", "paper")),
        enhance=read_bool(f.enhance, "fit.enhance"),
        detail_max_size=read_int(f.detail_max_size, "fit.detail_max_size", 0, 8192),
        refine_iterations=read_int(f.refine_iterations, "fit.refine_iterations", 0, 1_000_000),
        refine_lr=read_float(f.refine_lr, "fit.refine_lr", 0.0, exclusive_minimum=True),
        refine_weight=read_float(f.refine_weight, "fit.refine_weight", 0.0),
        refine_size=read_int(f.refine_size, "fit.refine_size", 8, 4096),
        refine_light_lr=read_float(f.refine_light_lr, "fit.refine_light_lr", 0.0),
        albedo_gauge=read_bool(f.albedo_gauge, "fit.albedo_gauge"),
        gauge_level=read_choice(f.gauge_level, "fit.gauge_level", GAUGE_LEVELS),
        gauge_light_weight=read_float(f.gauge_light_weight, "fit.gauge_light_weight", 0.0, 1.0),
        gauge_tolerance=read_float(f.gauge_tolerance, "fit.gauge_tolerance", 0.0),
        light_prior=read_float(f.light_prior, "fit.light_prior", 0.0),
        specular_gauge=read_bool(f.specular_gauge, "fit.specular_gauge"),
        delight=DelightSettings.from_config(f.delight),
    )


def geometry_config(cfg: DictConfig) -> GeometryConfig:
    """The geometry settings of ``cfg``, every value checked."""
    g = OmegaConf.to_container(cfg.geometry, resolve=True)
    checks = {
        "resolution": lambda v, n: read_int(v, n, 16, 4096),
        "subdivisions": lambda v, n: read_int(v, n, 0, 4),
        "fov_deg": lambda v, n: read_float(v, n, 0.0, 179.0, exclusive_minimum=True),
        "n_dirs": lambda v, n: read_int(v, n, 1, 100_000),
        "min_cos": lambda v, n: read_float(v, n, 0.0, 0.99),
        "min_face_px": lambda v, n: read_float(v, n, 1.0),
        "max_side": lambda v, n: read_int(v, n, 64, 100_000),
        "mirror_guide": read_bool,
        "raster_backend": lambda v, n: read_choice(v, n, ("torch", "nvdiffrast")),
        "crop_margin": lambda v, n: None if v is None else read_float(v, n, 0.0, 10.0),
        "crop_max_side": lambda v, n: read_int(v, n, 64, 100_000),
    }
    unknown = sorted(set(g) - set(checks))
    if unknown:
        raise InputError(f"unknown setting geometry.{unknown[0]}; see conf/optimize.yaml")
    return GeometryConfig(**{k: checks[k](v, f"geometry.{k}") for k, v in g.items()})


def export_options(cfg: DictConfig, title: str = "facerefl reconstruction report") -> ExportOptions:
    e = cfg.export
    return ExportOptions(novel_yaw_degrees=read_float(e.novel_yaw_degrees, "export.novel_yaw_degrees", -180.0, 180.0),
                         exr=read_bool(e.exr, "export.exr"),
                         relit_face_size=read_int(e.relit_face_size, "export.relit_face_size", 0, 8192),
                         title=title)


def environments(cfg: DictConfig) -> dict[str, torch.Tensor]:
    """Named SH lights for the relit renders (the data stage's HDR table)."""
    names = cfg.export.environments
    if names is not None and not OmegaConf.is_list(names):
        raise InputError(f"export.environments must be a list of names, e.g. [studio, city]; got {names!r}")
    names = [str(n) for n in (names or [])]
    if not names:
        return {}
    table = load_table()
    missing = [n for n in names if n not in table]
    if missing:
        raise InputError(f"unknown environment(s) {missing}; available: {sorted(table)}")
    return {n: torch.as_tensor(table[n], dtype=torch.float32) for n in names}


def check_config(cfg: DictConfig) -> None:
    """Refuse any bad setting before work starts (:class:`InputError` names it)."""
    fit_settings(cfg)
    geometry_config(cfg)
    export_options(cfg)
    for key in ("overwrite", "progress"):
        read_bool(cfg.get(key), key)
    read_bool(cfg.distributed.enabled, "distributed.enabled")
    read_int(cfg.get("seed"), "seed", 0, 2**63 - 1)
    if cfg.get("threads") is not None:
        read_int(cfg.threads, "threads", 1, 4096)
    read_device(cfg.get("device"))
    for key in ("output_dir", "weights"):
        if cfg.get(key) is not None and not isinstance(cfg.get(key), str):
            raise InputError(f"{key} must be a path, got {cfg.get(key)!r}")


def resolved_config(cfg: DictConfig) -> dict[str, Any]:
    """``cfg`` as plain data with interpolations resolved (a value that cannot be resolved
    outside a Hydra run, such as ``${hydra:...}``, is kept as written)."""
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # noqa: BLE001 - fall back leaf by leaf
        pass
    raw = OmegaConf.to_container(cfg, resolve=False)

    def walk(node: Any, prefix: str) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, f"{prefix}{k}.") for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, f"{prefix}{i}.") for i, v in enumerate(node)]
        if isinstance(node, str) and "${" in node:
            try:
                return OmegaConf.select(cfg, prefix[:-1], throw_on_resolution_failure=True)
            except Exception:  # noqa: BLE001
                return node
        return node

    return walk(raw, "")


def config_yaml(config: dict[str, Any]) -> str:
    """The resolved settings as a YAML snapshot that OmegaConf/Hydra read back literally
    (a ``${`` in a file name is escaped so it is not taken for an interpolation)."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return escape_interpolation(node) if isinstance(node, str) else node

    return "# resolved settings of this fit (python optimize.py, facerefl.tasks.optimize)\n" + \
        OmegaConf.to_yaml(walk(config))


def package_versions() -> dict[str, str | None]:
    """Versions of Python and the packages a fit's numbers depend on."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in ("facerefl", "torch", "numpy", "mediapipe", "opencv-python", "pillow", "safetensors",
                 "hydra-core", "omegaconf", "pytorch-lightning", "numba"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def run_record(cfg: DictConfig) -> dict[str, Any]:
    """What a fit needs to be reproduced: the resolved settings and the package versions."""
    return {"config": resolved_config(cfg), "versions": package_versions()}


def _wandb_logger(cfg: DictConfig, name: str, record: dict[str, Any]):
    """An offline W&B logger for one photo when ``logger=wandb``, else None; the run's
    config holds the resolved settings and package versions."""
    lg = cfg.get("logger")
    if not lg or "wandb" not in lg:
        return None
    from hydra.utils import instantiate

    logger = instantiate(lg.wandb, name=name)
    logger.log_hyperparams({**record["config"], "versions": record["versions"]})
    return logger


def fit_one(image: Path, out_dir: Path, cfg: DictConfig, nets: ReflectanceNetworks,
            envs: dict[str, torch.Tensor]) -> PhotoReport:
    """Geometry, fitting and exports for one photo; user errors become a failed row.

    The output folder is locked for the whole fit (a second run into it fails at once),
    outputs are staged next to it and moved into place complete, and what a killed run
    left behind is cleaned up (:func:`output_slot`).
    """
    out_dir = Path(out_dir).expanduser()

    def failed(message: str) -> PhotoReport:
        return PhotoReport(str(image), False, None, error=message)

    try:
        with output_slot(out_dir, read_bool(cfg.overwrite, "overwrite")):
            return _fit_and_write(image, out_dir, cfg, nets, envs)
    except (InputError, AssetMissingError) as e:
        return failed(one_line(e))
    except LockedError:
        return failed(f"another facerefl run is writing {out_dir}; wait for it to finish or choose another output_dir")
    except OSError as e:
        return failed(os_error_message(e))


@dataclass
class FitJob:
    """Fits photos into their output folders, one call per photo: what the local loop and
    each process of the predict loop (:func:`facerefl.tasks.predict.predict_photos`) run.

    Attributes:
        cfg: the job's config.
        out_dirs: photo path (as a string) -> its output folder (:func:`output_dirs`).
        nets, envs: the networks and relighting environments, loaded by :meth:`setup`.
    """

    cfg: DictConfig
    out_dirs: dict[str, Path]
    nets: ReflectanceNetworks | None = None
    envs: dict[str, torch.Tensor] = field(default_factory=dict)

    def setup(self, device: torch.device) -> None:
        """Load the networks onto ``device`` (the fit follows them there) and the lights."""
        self.nets = load_networks(self.cfg).to(device)
        self.envs = environments(self.cfg)

    def __call__(self, image: str) -> dict[str, Any]:
        """Fit ``image``; its :class:`PhotoReport` as a plain dict (it crosses processes)."""
        if self.nets is None:
            raise RuntimeError("FitJob.setup(device) must run before the first photo")
        return asdict(fit_one(Path(image), self.out_dirs[image], self.cfg, self.nets, self.envs))


def _fit_and_write(image: Path, out_dir: Path, cfg: DictConfig, nets: ReflectanceNetworks,
                   envs: dict[str, torch.Tensor]) -> PhotoReport:
    t0 = time.perf_counter()
    geom = build_face_geometry(image, geometry_config(cfg))
    t_geom = time.perf_counter() - t0
    settings = fit_settings(cfg)
    record = run_record(cfg)
    logger = _wandb_logger(cfg, image.stem, record)
    bar = _progress(cfg, _printable(image.name), settings.iterations + settings.refine_iterations)

    def on_step(it: int, loss: float) -> None:
        if bar is not None:
            bar.update(1 if it > 0 else 0)
            bar.set_postfix(loss=f"{loss:.5f}")
        if logger is not None:
            logger.log_metrics({"fit/loss": loss}, step=it)

    try:
        fit = fit_geometry(geom, nets, settings, on_step=on_step)
    finally:
        if bar is not None:
            bar.close()
    t_w = time.perf_counter()
    with staged_output_dir(out_dir, overwrite=read_bool(cfg.overwrite, "overwrite")) as stage:
        files = write_outputs(fit, stage, cfg, envs, timings={"geometry": t_geom, **fit.timings},
                              title=f"facerefl: {_printable(image.name)}")
        atomic_write_text(stage / "config.yaml", config_yaml(record["config"]))
        t_write = time.perf_counter() - t_w
        timings = {"geometry": t_geom, **fit.timings, "writing": t_write, "total": time.perf_counter() - t0}
        # metrics.json again, now that the writing time and the total are known
        save_metrics_json(stage / "metrics.json", fit.metrics, timings, fit.result.losses, extra=record)
    if logger is not None:
        logger.log_metrics({f"fit/{k}": v for k, v in fit.metrics.items() if math.isfinite(v)})
        logger.finalize("success")
    log.info("%s: %d files in %s", _printable(image.name), len(files) + 1, _printable(str(out_dir)))
    return PhotoReport(str(image), True, str(out_dir), metrics=fit.metrics, timings=timings)


@contextmanager
def output_slot(path: Path, overwrite: bool) -> Iterator[None]:
    """Claim the output folder ``path`` for one fit.

    Refuses a non-empty folder unless ``overwrite`` (and then only one holding an earlier
    result, so ``output_dir=~`` cannot wipe a home folder), creates missing parent folders
    (removed again if they stay empty), takes :func:`~facerefl.fsutil.folder_lock`, and
    removes what a killed run left (restoring a result it had moved aside).

    Raises:
        InputError: the folder is taken, or not a previous result.
        LockedError: another run holds the lock.
    """
    check_output_dir(path, overwrite)
    created = []
    for parent in reversed([path.parent, *path.parent.parents]):
        if not parent.exists():
            try:
                parent.mkdir()
            except FileExistsError:  # another process of a distributed run made it first
                continue
            created.append(parent)
    try:
        with folder_lock(path):
            recover_stale(path)
            check_output_dir(path, overwrite)
            if overwrite and path.is_dir() and any(path.iterdir()) and not (path / "metrics.json").is_file():
                raise InputError(f"output folder {path} holds files that are not a facerefl result; "
                                 "overwrite=true replaces only earlier results: choose another output_dir")
            yield
    finally:
        for parent in reversed(created):
            try:
                parent.rmdir()
            except OSError:
                break


@contextmanager
def staged_output_dir(path: Path, overwrite: bool) -> Iterator[Path]:
    """Write a photo's outputs into a hidden sibling folder and move it into place at the
    end, so a failed, interrupted (SIGINT, SIGTERM) or killed run never leaves a
    half-written output folder. Call inside :func:`output_slot`."""
    path = Path(path)
    stage = sibling(path, "partial")
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir()
    try:
        yield stage
        check_output_dir(path, overwrite)
        replace_dir(stage, path)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _progress(cfg: DictConfig, name: str, total: int):
    if not read_bool(cfg.progress, "progress"):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"fit {name}", unit="it", leave=False, file=sys.stderr)


def write_outputs(fit: PhotoFit, out_dir: Path, cfg: DictConfig,
                  envs: dict[str, torch.Tensor], timings: dict[str, float],
                  title: str = "facerefl reconstruction report") -> list[Path]:
    """Everything in ``out_dir`` (maps, light, renders, meshes, metrics, report)."""
    g, r = fit.geometry, fit.result
    appearance = FaceAppearance(
        maps=r.maps.face(0),
        vis_sh=g.visibility_sh[0],
        bent_normal=g.bent_normal[0],
        roughness=float(cfg.fit.roughness),
        ao=g.ao[0],
        spec_model=str(cfg.fit.spec_model),
    )
    out = FitOutputs(
        photo=g.photo,
        rendering=fit.rendering,
        mask=fit.coverage,
        face=appearance,
        light=r.light[0],
        mesh=g.mesh,
        camera=g.camera,
        loss_history=tuple(r.losses),
        metrics=fit.metrics,
        timings=timings,
        texture=g.texture[0],
    )
    return write_all(out, out_dir, environments=envs, options=export_options(cfg, title))


def _sweep_job_dir() -> Path | None:
    """The job's own folder when running as part of a Hydra multirun (sweep), else None."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
    except (ImportError, ValueError):
        return None
    return Path(hc.runtime.output_dir) if hc.mode == RunMode.MULTIRUN else None


def _folder_name(stem: str) -> str:
    """A photo stem as an output-folder name (bytes that are not UTF-8 become ``_``)."""
    return "".join("_" if 0xDC80 <= ord(c) <= 0xDCFF else c for c in stem)


def output_dirs(cfg: DictConfig, images: list[Path], from_folder: bool) -> dict[str, Path]:
    """The output folder of each photo (keyed by ``str(photo)``).

    ``output_dir`` for one photo; ``<output_dir>/<stem>`` for a folder, or
    ``<output_root>/<stem>`` without ``output_dir``. Photos sharing a stem (``face.png``,
    ``face.jpg``; compared without case) get ``<stem>-<ext>`` each, so none overwrites
    or blocks another.
    """
    job = _sweep_job_dir()
    if cfg.get("output_dir"):
        base = Path(str(cfg.output_dir)).expanduser()
        if not from_folder:
            return {str(images[0]): base}
    elif job is not None:
        base = job  # each sweep job writes into its own folder
    else:
        base = Path(str(cfg.output_root)).expanduser()
    stems = Counter(_folder_name(img.stem).casefold() for img in images)
    out: dict[str, Path] = {}
    used: set[str] = set()
    for img in images:
        name = _folder_name(img.stem)
        if stems[name.casefold()] > 1:
            name = f"{name}-{img.suffix.lstrip('.').lower() or 'noext'}"
        unique, k = name, 2
        while unique.casefold() in used:
            unique, k = f"{name}-{k}", k + 1
        used.add(unique.casefold())
        out[str(img)] = base / unique
    return out


def summary_table(rows: list[PhotoReport]) -> str:
    """A plain-text table of the run."""
    head = f"{'photo':28s} {'status':7s} {'PSNR0':>6s} {'PSNR':>6s} {'SSIM':>5s} {'time s':>7s}  output / error"
    lines = [head, "-" * len(head)]
    for r in rows:
        name = _printable(Path(r.image).name)[:28]
        if r.ok:
            m = r.metrics
            lines.append(f"{name:28s} {'ok':7s} {m['psnr_initial']:6.2f} {m['psnr_final']:6.2f} "
                         f"{m['ssim_final']:5.3f} {r.timings.get('total', 0):7.1f}  {_printable(str(r.output_dir))}")
        else:
            lines.append(f"{name:28s} {'FAILED':7s} {'':6s} {'':6s} {'':5s} {'':7s}  {_printable(str(r.error))}")
    ok = sum(r.ok for r in rows)
    lines.append(f"{ok} of {len(rows)} photo(s) fitted")
    return "\n".join(lines)


def optimize(cfg: DictConfig) -> dict[str, Any]:
    """Fit ``cfg.image`` (a photo or a folder). Returns ``{"rows": [...], "failed": n, "folder": bool}``.

    Every setting is checked before any work (:func:`check_config`).

    Raises:
        InputError / AssetMissingError: bad input that stops the whole run (bad setting,
            no input, missing or damaged weights or assets). Per-photo failures are rows.
    """
    check_config(cfg)
    torch.manual_seed(read_int(cfg.seed, "seed", 0))
    if cfg.get("threads") is not None:
        torch.set_num_threads(read_int(cfg.threads, "threads", 1))
    images, from_folder = resolve_inputs(cfg.get("image"))
    job = FitJob(cfg, output_dirs(cfg, images, from_folder))
    if cfg.distributed.enabled:
        # Lightning loads only for a distributed run (a second or more of start-up otherwise)
        from facerefl.tasks.predict import predict_photos

        rows = [PhotoReport(**r) for r in predict_photos(cfg.distributed, images, job)]
    else:
        job.setup(torch.device(read_device(cfg.device)))
        rows = [PhotoReport(**job(str(img))) for img in images]
    print(summary_table(rows))
    return {"rows": rows, "failed": sum(not r.ok for r in rows), "folder": from_folder}


def optimize_command(cfg: DictConfig) -> int:
    """``optimize.py``'s job: :func:`optimize`, then the exit status (0 all fitted, 1 some
    photos of a folder failed).

    Raises:
        InputError: the single photo failed, or every photo of the folder did (one line).
    """
    out = optimize(cfg)
    rows = out["rows"]
    if not out["failed"]:
        return 0
    first = next(r for r in rows if not r.ok)
    if not out["folder"]:
        raise InputError(first.error)
    if out["failed"] == len(rows):
        raise InputError(f"none of the {len(rows)} file(s) in {cfg.image} could be fitted "
                         f"(first, {Path(first.image).name}: {first.error})")
    return 1
