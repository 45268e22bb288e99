"""The lighting-consistency benchmark: K synthetic faces × L lightings, several pipelines.

Each (face, lighting) example is rendered by the Monte Carlo renderer as the test set is
(:func:`facerefl.eval.consistency.benchmark_example`; cached on disk as safetensors, so
reruns skip the rendering), then goes through the geometry stage and the latent phase
once. The "paper" pipeline is the latent phase's maps (with the gauge when on; the paper's
method exactly under ``ablation=paper_fit``);
every delighting variant is applied to that same fit, so the variants are compared side by
side on identical inputs in one run. Per variant and face: pairwise albedo PSNR (raw and
per-channel gain-aligned), albedo PSNR against the truth, the luminance coefficient of
variation across lightings, and the reconstruction PSNR over the face.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file, save_file

from facerefl.data.assemble import Sizes
from facerefl.data.types import ReflectanceBatch
from facerefl.errors import InputError
from facerefl.eval.compare import compare
from facerefl.eval.consistency import Lighting, benchmark_example, face_consistency
from facerefl.eval.synthetic import ground_truth, worker_init, worker_networks
from facerefl.fit.delight import DelightSettings
from facerefl.fit.loop import FitSettings, delight_problem, masked_psnr, render_maps
from facerefl.fit.pipeline import fit_geometry, problem_from_geometry
from facerefl.geometry.result import GeometryConfig, build_face_geometry
from facerefl.models.networks import ReflectanceNetworks

__all__ = ["load_or_render", "run_job", "run_benchmark", "PAPER"]

#: Name of the pipeline without delighting (the latent phase; the paper's method under ablation=paper_fit).
PAPER = "paper"


def load_or_render(cache: Path | None, seed: int, lighting: Lighting, sizes: Sizes, spp: int,
                   renderer: str = "mc") -> ReflectanceBatch:
    """The benchmark example, from ``cache`` when rendered before (same seed, lighting, sizes,
    renderer and spp). ``renderer``: ``"mc"`` (as the test set) or ``"sh"`` (fast, tests)."""
    tag = f"{spp}" if renderer == "mc" else renderer
    key = f"{seed}_{lighting.name}_{sizes.image}_{sizes.texture}_{sizes.detail}_{tag}.safetensors"
    path = None if cache is None else cache / key
    if path is not None and path.is_file():
        return ReflectanceBatch(**load_file(str(path)))
    ex = benchmark_example(seed, lighting, sizes, renderer=renderer, spp=spp)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{time.time_ns()}.tmp")
        save_file({k: v.contiguous() for k, v in ex.tensors().items()}, str(tmp))
        tmp.replace(path)
    return ex


def run_job(seed: int, lighting: Lighting, sizes: Sizes, spp: int, cache: Path | None,
            nets: ReflectanceNetworks, settings: FitSettings, geometry: GeometryConfig,
            variants: dict[str, DelightSettings], probe_size: int = 64, renderer: str = "mc") -> dict:
    """One example: geometry, latent phase, then every delighting variant on that fit."""
    ex = load_or_render(cache, seed, lighting, sizes, spp, renderer)
    out = {"seed": seed, "lighting": lighting.name, "ok": False}
    try:
        geom = build_face_geometry(ex.image[0], geometry)
    except InputError as e:
        out["error"] = str(e).splitlines()[0]
        return out
    base = replace(settings, delight=None)
    t0 = time.perf_counter()
    fit = fit_geometry(geom, nets, base)
    out["fit_seconds"] = time.perf_counter() - t0
    r = fit.result
    problem = problem_from_geometry(geom, settings.roughness)
    gt = ground_truth(ex)
    out["gt_albedo"] = ex.albedo
    out["gauge_scale"] = None if r.gauge_scale is None else [float(v) for v in r.gauge_scale[0]]
    runs = {PAPER: (r.maps, r.light, None, None)}
    for name, ds in variants.items():
        d = delight_problem(problem, r.maps, r.light, settings, ds)
        runs[name] = (d.maps, d.light, d.shading, d.out_of_range)
    out["pipelines"] = {}
    for name, (maps, light, shading, oor) in runs.items():
        sc = compare(maps.albedo, maps.specular, maps.normal, light, gt, probe_size)
        with torch.no_grad():
            pred = render_maps(problem, maps, light, settings, shading)
        out["pipelines"][name] = {
            "albedo": maps.albedo, "albedo_psnr": sc.albedo.psnr, "albedo_aligned_psnr": sc.albedo_aligned.psnr,
            "light_psnr": sc.light.psnr, "recon_psnr": masked_psnr(pred, problem.target, problem.weight),
            "out_of_range": oor,
        }
    out["ok"] = True
    return out


def _worker_job(*args) -> dict:
    return run_job(*args[:5], worker_networks(), *args[5:])


def run_benchmark(seeds: list[int], lightings: list[Lighting], sizes: Sizes, spp: int, cache: Path | None,
                  nets: ReflectanceNetworks | None, settings: FitSettings, geometry: GeometryConfig,
                  variants: dict[str, DelightSettings], workers: int = 1, weights: Path | None = None,
                  progress: Callable[[dict], None] | None = None, renderer: str = "mc") -> dict:
    """All faces × lightings → ``{"faces": [...], "summary": {pipeline: means}, "jobs": [...]}``."""
    jobs = [(s, lt) for s in seeds for lt in lightings]
    if workers > 1:
        if weights is None:
            raise ValueError("run_benchmark: workers > 1 needs the weights folder")
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                 initializer=worker_init, initargs=(str(weights),)) as pool:
            futs = [pool.submit(_worker_job, s, lt, sizes, spp, cache, settings, geometry, variants, 64, renderer)
                    for s, lt in jobs]
            results = []
            for f in futs:
                results.append(f.result())
                if progress:
                    progress(results[-1])
    else:
        results = []
        for s, lt in jobs:
            results.append(run_job(s, lt, sizes, spp, cache, nets, settings, geometry, variants, 64, renderer))
            if progress:
                progress(results[-1])
    names = [PAPER, *variants]
    faces = []
    for s in seeds:
        rows = [j for j in results if j["seed"] == s and j["ok"]]
        if not rows:
            continue
        gt = rows[0]["gt_albedo"]
        faces.append({"seed": s, **{n: face_consistency([j["pipelines"][n]["albedo"] for j in rows],
                                                         [j["pipelines"][n]["albedo_psnr"] for j in rows], gt)
                                    for n in names}})
    summary = {}
    for n in names:
        keys = ("pairwise_psnr_mean", "pairwise_psnr_min", "pairwise_psnr_aligned_mean", "psnr_vs_truth_mean",
                "luminance_cov")
        summary[n] = {k: _mean([f[n][k] for f in faces]) for k in keys}
        ok = [j["pipelines"][n] for j in results if j["ok"]]
        summary[n]["albedo_aligned_psnr"] = _mean([p["albedo_aligned_psnr"] for p in ok])
        summary[n]["light_psnr"] = _mean([p["light_psnr"] for p in ok])
        summary[n]["recon_psnr"] = _mean([p["recon_psnr"] for p in ok])
        oor = [p["out_of_range"] for p in ok if p["out_of_range"] is not None]
        summary[n]["out_of_range"] = _mean(oor) if oor else None
    slim = [{k: v for k, v in j.items() if k not in ("gt_albedo", "pipelines")}
            | {"pipelines": {n: {k: v for k, v in p.items() if k != "albedo"} for n, p in j.get("pipelines", {}).items()}}
            for j in results]
    return {"faces": faces, "summary": summary, "jobs": slim, "fitted": sum(j["ok"] for j in results),
            "examples": len(results), "_results": results}


def _mean(values: list) -> float | None:
    v = [x for x in values if x is not None and math.isfinite(x)]
    return sum(v) / len(v) if v else None
