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
import shutil
import sys
from contextlib import contextmanager
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from facerefl.assets import AssetMissingError
from facerefl.errors import InputError
from facerefl.fsutil import replace_dir
from facerefl.export.atomic import check_output_dir, prepare_output_dir
from facerefl.export.maps import FaceMaps
from facerefl.export.plots import save_metrics_json
from facerefl.export.outputs import ExportOptions, FitOutputs, write_all
from facerefl.export.relight import FaceAppearance
from facerefl.fit.loop import FitSettings
from facerefl.fit.pipeline import PhotoFit, fit_geometry
from facerefl.geometry.result import GeometryConfig, build_face_geometry
from facerefl.models.networks import ReflectanceNetworks, shipped_dir

log = logging.getLogger(__name__)

__all__ = ["PhotoReport", "optimize", "resolve_inputs", "fit_one", "load_networks"]


@dataclass
class PhotoReport:
    """One row of the run summary."""

    image: str
    ok: bool
    output_dir: str | None = None
    error: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def resolve_inputs(image: str | None) -> tuple[list[Path], bool]:
    """The photos to fit, and whether ``image`` named a folder.

    A folder contributes every regular file in it (sorted), images or not, so that a
    stray non-image is reported as a failure rather than silently skipped; hidden files
    are ignored.
    """
    if image is None or str(image).strip() == "":
        raise InputError("no input given; run `python optimize.py image=PATH` (a photo or a folder)")
    path = Path(str(image)).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise InputError(f"folder {path} holds no files to fit")
        return files, True
    if not path.exists():
        raise InputError(f"input {path} does not exist")
    return [path], False


def load_networks(cfg: DictConfig) -> ReflectanceNetworks:
    """The frozen inference networks: ``cfg.weights`` or the shipped weights of the preset."""
    folder = Path(cfg.weights) if cfg.get("weights") else shipped_dir(str(cfg.preset))
    nets = ReflectanceNetworks.from_safetensors(folder, map_location=cfg.get("device", "cpu"))
    return nets.freeze()


def fit_settings(cfg: DictConfig) -> FitSettings:
    f = cfg.fit
    return FitSettings(
        iterations=int(cfg.iterations), lr=float(f.lr), betas=tuple(float(b) for b in f.betas),
        optimize=tuple(f.optimize), early_stop=bool(f.early_stop), tol=float(f.tol),
        patience=int(f.patience), roughness=float(f.roughness), spec_model=str(f.spec_model),
        enhance=bool(f.get("enhance", True)),
        refine_iterations=int(f.get("refine_iterations", 0)), refine_lr=float(f.get("refine_lr", 0.02)),
        refine_weight=float(f.get("refine_weight", 1e-3)), refine_size=int(f.get("refine_size", 256)),
        refine_light_lr=float(f.get("refine_light_lr", 0.01)),
        albedo_gauge=bool(f.get("albedo_gauge", False)),
    )


def geometry_config(cfg: DictConfig) -> GeometryConfig:
    return GeometryConfig(**OmegaConf.to_container(cfg.geometry, resolve=True))


def environments(cfg: DictConfig) -> dict[str, torch.Tensor]:
    """Named SH lights for the relit renders (the data stage's HDR table)."""
    names = list(cfg.export.environments or [])
    if not names:
        return {}
    from facerefl.data.lighting import load_table

    table = load_table()
    missing = [n for n in names if n not in table]
    if missing:
        raise InputError(f"unknown environment(s) {missing}; available: {sorted(table)}")
    return {n: torch.as_tensor(table[n], dtype=torch.float32) for n in names}


def _wandb_logger(cfg: DictConfig, name: str):
    """An offline W&B logger for one photo when ``logger=wandb``, else None."""
    lg = cfg.get("logger")
    if not lg or "wandb" not in lg:
        return None
    from hydra.utils import instantiate

    return instantiate(lg.wandb, name=name)


def fit_one(image: Path, out_dir: Path, cfg: DictConfig, nets: ReflectanceNetworks,
            envs: dict[str, torch.Tensor]) -> PhotoReport:
    """Geometry, fitting and exports for one photo; user errors become a failed row."""
    t0 = time.perf_counter()
    try:
        check_output_dir(out_dir, overwrite=bool(cfg.overwrite))
        geom = build_face_geometry(image, geometry_config(cfg))
        t_geom = time.perf_counter() - t0
        settings = fit_settings(cfg)
        logger = _wandb_logger(cfg, image.stem)
        bar = _progress(cfg, image.name, settings.iterations + settings.refine_iterations)

        def on_step(it: int, loss: float) -> None:
            if bar is not None:
                bar.update(1 if it > 0 else 0)
                bar.set_postfix(loss=f"{loss:.5f}")
            if logger is not None:
                logger.log_metrics({"fit/loss": loss}, step=it)

        fit = fit_geometry(geom, nets, settings, on_step=on_step)
        if bar is not None:
            bar.close()
        t_w = time.perf_counter()
        with staged_output_dir(out_dir, overwrite=bool(cfg.overwrite)) as stage:
            files = write_outputs(fit, stage, cfg, envs, timings={"geometry": t_geom, **fit.timings},
                                  title=f"facerefl: {image.name}")
            t_write = time.perf_counter() - t_w
            timings = {"geometry": t_geom, **fit.timings, "writing": t_write,
                       "total": time.perf_counter() - t0}
            # metrics.json again, now that the writing time and the total are known
            save_metrics_json(stage / "metrics.json", fit.metrics, timings, fit.result.losses)
        if logger is not None:
            logger.log_metrics({f"fit/{k}": v for k, v in fit.metrics.items() if math.isfinite(v)})
            logger.finalize("success")
        log.info("%s: %d files in %s", image.name, len(files), out_dir)
        return PhotoReport(str(image), True, str(out_dir), metrics=fit.metrics, timings=timings)
    except (InputError, AssetMissingError) as e:
        return PhotoReport(str(image), False, None, error=str(e).splitlines()[0])


@contextmanager
def staged_output_dir(path: Path, overwrite: bool):
    """Write a photo's outputs into a hidden sibling folder and move it into place at the
    end, so a killed or failed run never leaves a half-written output folder (a stale
    ``.<name>.partial`` folder is removed by the next run)."""
    path = Path(path)
    stage = path.parent / f".{path.name}.partial"
    if stage.exists():
        shutil.rmtree(stage)
    prepare_output_dir(stage, overwrite=False)
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    check_output_dir(path, overwrite)
    replace_dir(stage, path)


def _progress(cfg: DictConfig, name: str, total: int):
    if not cfg.get("progress", True):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"fit {name}", unit="it", leave=False, file=sys.stderr)


def write_outputs(fit: PhotoFit, out_dir: Path, cfg: DictConfig,
                  envs: dict[str, torch.Tensor], timings: dict[str, float],
                  title: str = "facerefl reconstruction report") -> list[Path]:
    """Everything in ``out_dir`` (maps, light, renders, meshes, metrics, report)."""
    g, r = fit.geometry, fit.result
    appearance = FaceAppearance(
        maps=FaceMaps.from_batch(r.maps),
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
    e = cfg.export
    options = ExportOptions(novel_yaw_degrees=float(e.novel_yaw_degrees), exr=bool(e.exr),
                            title=title)
    return write_all(out, out_dir, environments=envs, options=options)


def _sweep_job_dir() -> Path | None:
    """The job's own folder when running as part of a Hydra multirun (sweep), else None."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
    except (ImportError, ValueError):
        return None
    return Path(hc.runtime.output_dir) if hc.mode == RunMode.MULTIRUN else None


def _output_dir(cfg: DictConfig, image: Path, from_folder: bool) -> Path:
    root = Path(cfg.output_root)
    job = _sweep_job_dir()
    if job is not None and not cfg.get("output_dir"):
        return job / image.stem  # each sweep job writes into its own folder
    if cfg.get("output_dir"):
        base = Path(str(cfg.output_dir))
        return base / image.stem if from_folder else base
    return root / image.stem


def summary_table(rows: list[PhotoReport]) -> str:
    """A plain-text table of the run."""
    head = f"{'photo':28s} {'status':7s} {'PSNR0':>6s} {'PSNR':>6s} {'SSIM':>5s} {'time s':>7s}  output / error"
    lines = [head, "-" * len(head)]
    for r in rows:
        name = Path(r.image).name[:28]
        if r.ok:
            m = r.metrics
            lines.append(f"{name:28s} {'ok':7s} {m['psnr_initial']:6.2f} {m['psnr_final']:6.2f} "
                         f"{m['ssim_final']:5.3f} {r.timings.get('total', 0):7.1f}  {r.output_dir}")
        else:
            lines.append(f"{name:28s} {'FAILED':7s} {'':6s} {'':6s} {'':5s} {'':7s}  {r.error}")
    ok = sum(r.ok for r in rows)
    lines.append(f"{ok} of {len(rows)} photo(s) fitted")
    return "\n".join(lines)


def optimize(cfg: DictConfig) -> dict[str, Any]:
    """Fit ``cfg.image`` (a photo or a folder). Returns ``{"rows": [...], "failed": n}``.

    Raises:
        InputError / AssetMissingError: bad input that stops the whole run (no input,
            missing weights or assets). Per-photo failures in a folder are rows instead.
    """
    torch.manual_seed(int(cfg.get("seed", 0)))
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    images, from_folder = resolve_inputs(cfg.get("image"))
    if cfg.distributed.enabled:
        from facerefl.tasks.predict import predict_photos

        rows = predict_photos(cfg, images, from_folder)
    else:
        nets = load_networks(cfg)
        envs = environments(cfg)
        rows = [fit_one(img, _output_dir(cfg, img, from_folder), cfg, nets, envs) for img in images]
    print(summary_table(rows))
    return {"rows": rows, "failed": sum(not r.ok for r in rows), "folder": from_folder}
