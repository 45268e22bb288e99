"""Run the full pipeline on synthetic examples with ground truth and score it.

"Full pipeline" here is what a real photo goes through: the example's rendered image (sRGB,
Monte Carlo reference for the test set) → the geometry stage (landmarks, fitted mesh and
camera, unwrap, bake; :func:`facerefl.geometry.result.build_face_geometry`) → encoders →
latent optimization (:func:`facerefl.fit.pipeline.fit_geometry`). The known mesh and camera
of the example are *not* used; the estimated maps share the template's UV layout with the
ground truth, so they are compared texel for texel (:mod:`facerefl.eval.compare`).

A face the landmark detector misses counts as a failed example (reported, not scored).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from torch import Tensor

from facerefl.data.types import ReflectanceBatch
from facerefl.errors import InputError
from facerefl.eval.compare import GroundTruth, MapScores, compare, flat_normal_score
from facerefl.eval.metrics import Score
from facerefl.fit.loop import FitSettings
from facerefl.fit.pipeline import PhotoFit, fit_geometry
from facerefl.geometry.result import FaceGeometry, GeometryConfig, build_face_geometry
from facerefl.models.networks import ReflectanceNetworks
from facerefl.render.color import linear_to_srgb

log = logging.getLogger(__name__)

__all__ = ["ExampleResult", "GeometryMemo", "ground_truth", "evaluate_example", "evaluate_examples"]

#: Image-space metrics copied from the fit (face region, sRGB; see fit.pipeline).
IMAGE_KEYS = ("psnr_initial", "psnr_final", "ssim_initial", "ssim_final")


@dataclass
class ExampleResult:
    """Outcome for one example.

    Attributes:
        name: example id (the generator seed).
        ok: False when the pipeline failed (``error`` says why).
        scores: Table 1 scores of the final (optimized) maps.
        initial_scores: the same for the encoders' initial maps (iteration 0).
        paper_scores: the same for the latent phase's maps (with the gauge when it is on;
            the paper's method under ``ablation=paper_fit``), which the default pipeline's delighting starts
            from; equal to ``scores`` when nothing follows the latent phase.
        flat_normal: the normal column's baseline, a flat map (:func:`flat_normal_score`).
        image: image-space PSNR/SSIM (face region, sRGB) before and after optimization.
        losses: the fit's loss at every iteration (Figure 5).
        seconds: wall time per stage (geometry, fit).
        albedo: ``[1, 3, h, w]`` the final estimated albedo (linear, UV) for figures.
        paper_albedo: ``[1, 3, h, w]`` the latent phase's albedo (linear, UV).
        reconstruction: ``[3, H, W]`` the final rendering over the photo (sRGB) for figures.
    """

    name: str
    ok: bool
    error: str | None = None
    scores: MapScores | None = None
    initial_scores: MapScores | None = None
    paper_scores: MapScores | None = None
    flat_normal: Score | None = None
    image: dict[str, float] = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    albedo: Tensor | None = None
    paper_albedo: Tensor | None = None
    reconstruction: Tensor | None = None

    def to_dict(self) -> dict:
        return {
            "name": self.name, "ok": self.ok, "error": self.error,
            "scores": None if self.scores is None else self.scores.to_dict(),
            "initial_scores": None if self.initial_scores is None else self.initial_scores.to_dict(),
            "paper_scores": None if self.paper_scores is None else self.paper_scores.to_dict(),
            "flat_normal": None if self.flat_normal is None else asdict(self.flat_normal),
            "image": dict(self.image), "seconds": dict(self.seconds),
            "iterations": max(len(self.losses) - 1, 0),
        }


class GeometryMemo:
    """Geometry results kept in memory by ``(example name, config)``: the jobs of one
    ablation sweep run in one process and see the same photos, so the geometry stage runs
    once per photo."""

    def __init__(self) -> None:
        self._store: dict[tuple[str, GeometryConfig], FaceGeometry | InputError] = {}

    def get(self, name: str, cfg: GeometryConfig, build: Callable[[], FaceGeometry]) -> FaceGeometry:
        key = (name, cfg)
        if key not in self._store:
            try:
                self._store[key] = build()
            except InputError as e:
                self._store[key] = e
        hit = self._store[key]
        if isinstance(hit, InputError):
            raise hit
        return hit

    def __len__(self) -> int:
        return len(self._store)


#: One memo per process (see :class:`GeometryMemo`).
MEMO = GeometryMemo()


def ground_truth(example: ReflectanceBatch) -> GroundTruth:
    return GroundTruth(example.albedo, example.specular, example.normal, example.light)


def example_name(example: ReflectanceBatch, index: int) -> str:
    return str(int(example.seed[0])) if example.seed is not None else f"example_{index:03d}"


def composite(fit: PhotoFit) -> Tensor:
    """``[3, H, W]`` the reconstruction pasted over the photo where the mesh covers it, sRGB."""
    return fit.geometry.photo * (1 - fit.coverage) + linear_to_srgb(fit.rendering) * fit.coverage


def scores_of(fit: PhotoFit, gt: GroundTruth, probe_size: int) -> tuple[MapScores, MapScores, MapScores]:
    """Final, initial and latent-phase :class:`MapScores` of a fit."""
    r = fit.result
    final = compare(r.maps.albedo, r.maps.specular, r.maps.normal, r.light, gt, probe_size)
    first = compare(r.initial_maps.albedo, r.initial_maps.specular, r.initial_maps.normal,
                    r.initial_light, gt, probe_size)
    lat = r.latent_maps
    paper = final if lat is None or lat is r.maps else compare(
        lat.albedo, lat.specular, lat.normal, r.light, gt, probe_size)
    return final, first, paper


def evaluate_example(example: ReflectanceBatch, name: str, nets: ReflectanceNetworks,
                     settings: FitSettings, geometry: GeometryConfig,
                     probe_size: int = 64, memo: GeometryMemo | None = None) -> ExampleResult:
    """Geometry stage → fit → scores for one example (batch of 1 with ``image`` set)."""
    if example.image is None:
        raise InputError(f"example {name} has no rendered image; rebuild the test set with "
                         "`python -m facerefl.data.make_testset` (it keeps all fields)")
    memo = memo if memo is not None else MEMO
    t0 = time.perf_counter()
    try:
        geom = memo.get(name, geometry, lambda: build_face_geometry(example.image[0], geometry))
    except InputError as e:
        return ExampleResult(name, False, error=str(e).splitlines()[0])
    t1 = time.perf_counter()
    fit = fit_geometry(geom, nets, settings)
    t2 = time.perf_counter()
    gt = ground_truth(example)
    final, first, paper = scores_of(fit, gt, probe_size)
    lat = fit.result.latent_maps
    return ExampleResult(
        name, True, scores=final, initial_scores=first, paper_scores=paper, flat_normal=flat_normal_score(gt),
        paper_albedo=fit.result.maps.albedo if lat is None else lat.albedo,
        image={k: float(fit.metrics[k]) for k in IMAGE_KEYS},
        losses=list(fit.result.losses),
        seconds={"geometry": t1 - t0, "fit": t2 - t1},
        albedo=fit.result.maps.albedo, reconstruction=composite(fit),
    )


def evaluate_examples(examples: Iterable[tuple[str, ReflectanceBatch]], nets: ReflectanceNetworks,
                      settings: FitSettings, geometry: GeometryConfig, probe_size: int = 64,
                      progress: Callable[[ExampleResult], None] | None = None,
                      workers: int = 1, weights: Path | None = None) -> list[ExampleResult]:
    """:func:`evaluate_example` over ``(name, example)`` pairs; results in input order.

    With ``workers > 1`` the examples run in that many worker processes (spawned, one
    torch thread each, networks loaded from the safetensors folder ``weights``): the fit
    of one photo is a chain of small operations that does not use two cores well, but
    independent photos do. ``nets`` is then unused in this process.
    """
    if workers <= 1:
        out = []
        for name, ex in examples:
            r = evaluate_example(ex, name, nets, settings, geometry, probe_size)
            if progress is not None:
                progress(r)
            out.append(r)
        return out
    if weights is None:
        raise ValueError("evaluate_examples: workers > 1 needs the weights folder")
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                             initializer=worker_init, initargs=(str(weights),)) as pool:
        futures = [pool.submit(_worker_run, ex, name, settings, geometry, probe_size) for name, ex in examples]
        out = []
        for f in futures:
            r = f.result()
            if progress is not None:
                progress(r)
            out.append(r)
    return out


_WORKER_NETS: ReflectanceNetworks | None = None


def worker_networks() -> ReflectanceNetworks:
    """The networks a worker process loaded in :func:`worker_init`."""
    assert _WORKER_NETS is not None, "worker not initialised"
    return _WORKER_NETS


def worker_init(weights: str) -> None:
    """Worker process set-up: one torch thread, networks from safetensors (never pickled)."""
    import os

    import torch

    global _WORKER_NETS
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    torch.set_num_threads(1)
    _WORKER_NETS = ReflectanceNetworks.from_safetensors(Path(weights)).freeze()


def _worker_run(example: ReflectanceBatch, name: str, settings: FitSettings, geometry: GeometryConfig,
                probe_size: int) -> ExampleResult:
    return evaluate_example(example, name, worker_networks(), settings, geometry, probe_size)


def _finite_mean(values: list[float]) -> float | None:
    v = [x for x in values if math.isfinite(x)]
    return sum(v) / len(v) if v else None


def level_error_summary(scales: list[tuple[float, float, float]]) -> dict:
    """The albedo level's error from the per-channel alignment scales (true ≈ scale ×
    estimate, :func:`~facerefl.eval.compare.compare`): mean and RMS over the examples of
    ``-log scale`` per channel (R, G, B); positive mean: the estimate is too bright."""
    errs = [[-math.log(max(v, 1e-8)) for v in sc] for sc in scales]
    if not errs:
        return {}
    n = len(errs)
    return {"mean": [sum(e[c] for e in errs) / n for c in range(3)],
            "rms": [math.sqrt(sum(e[c] ** 2 for e in errs) / n) for c in range(3)]}


def summarize(results: list[ExampleResult]) -> dict:
    """Means over the scored examples: ``{"count", "ok", "scores": {metric: {psnr, rmse},
    "normal_angle_deg", "albedo_level_log"}, "initial_scores": ..., "image": {...},
    "seconds_per_example"}`` (``albedo_level_log``: :func:`level_error_summary`).

    PSNR means are over finite values (an exact match has infinite PSNR).
    """
    ok = [r for r in results if r.ok]

    def table(attr: str) -> dict:
        rows = [getattr(r, attr) for r in ok]
        if not rows:
            return {}
        out = {}
        for key, v in rows[0].to_dict().items():
            if isinstance(v, dict):
                out[key] = {m: _finite_mean([getattr(getattr(s, key), m) for s in rows])
                            for m in ("psnr", "rmse")}
        out["normal_angle_deg"] = _finite_mean([s.normal_angle_deg for s in rows])
        out["albedo_level_log"] = level_error_summary([s.albedo_scale for s in rows])
        return out

    return {
        "count": len(results),
        "ok": len(ok),
        "failed": [{"name": r.name, "error": r.error} for r in results if not r.ok],
        "scores": table("scores"),
        "initial_scores": table("initial_scores"),
        "paper_scores": table("paper_scores") if all(r.paper_scores is not None for r in ok) else {},
        "flat_normal": ({m: _finite_mean([getattr(r.flat_normal, m) for r in ok]) for m in ("psnr", "rmse")}
                        if ok and all(r.flat_normal is not None for r in ok) else {}),
        "image": {k: _finite_mean([r.image[k] for r in ok]) for k in IMAGE_KEYS} if ok else {},
        "seconds_per_example": _finite_mean([sum(r.seconds.values()) for r in ok]),
    }
