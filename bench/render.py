"""Benchmark of the shading hot path used by fitting (texture lookup + full shading).

``run(out_dir)`` times forward + backward of :func:`shade_prepared` (texture sampling of
albedo, specular and normal maps, visibility-occluded diffuse, ``lobe`` specular with
specular occlusion) on a sphere covering about half of the image, at 256², 512² and
1024², on the CPU (and CUDA when present). The call is fitting's (``to_image=False``:
shaded pixels as a list, compared with the photo's pixels; no scatter into an image),
and the G-buffer preparation is done once outside the timing, as in fitting. On the CPU
both paths are timed: ``fused`` (the numba kernels :func:`shade_prepared` uses there)
and ``reference`` (composed PyTorch, ``FACEREFL_FUSED=0``; the path CUDA uses). Results
go to ``out_dir/render.json``.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from bench import OUT_DIR
from facerefl.fsutil import atomic_write_text
from facerefl.render import fused
from facerefl.render.raster import Camera, GBuffer, Mesh, rasterize
from facerefl.render.shading import PreparedGBuffer, prepare_gbuffer, shade_prepared

__all__ = ["SceneMaps", "uv_sphere", "synthetic_scene", "time_shading", "run"]

SIZES = (256, 512, 1024)


@dataclass(frozen=True)
class SceneMaps:
    """UV maps and lighting for a synthetic scene (NCHW maps, linear values).

    Attributes:
        albedo: ``[1, 3, T, T]`` in [0, 1]; specular: ``[1, 1, T, T]`` in [0, 1];
        normal: ``[1, 3, T, T]`` unit tangent-space; vis_sh: ``[1, 9, T, T]``;
        bent_normal: ``[1, 3, T, T]`` unit tangent-space; light: ``[1, 3, 9]``.
    """

    albedo: torch.Tensor
    specular: torch.Tensor
    normal: torch.Tensor
    vis_sh: torch.Tensor
    bent_normal: torch.Tensor
    light: torch.Tensor


def uv_sphere(n_lat: int, n_lon: int, radius: float, center: tuple[float, float, float]) -> Mesh:
    """A UV sphere (counter-clockwise from outside) with equirectangular UVs, camera frame."""
    lat = torch.linspace(0.0, math.pi, n_lat + 1, dtype=torch.float64)
    lon = torch.linspace(0.0, 2.0 * math.pi, n_lon + 1, dtype=torch.float64)
    la, lo = torch.meshgrid(lat, lon, indexing="ij")
    pts = torch.stack([torch.sin(la) * torch.sin(lo), torch.cos(la), torch.sin(la) * torch.cos(lo)], -1)
    verts = (pts * radius + torch.tensor(center, dtype=torch.float64)).reshape(-1, 3)
    uvs = torch.stack([lo / (2.0 * math.pi), 1.0 - la / math.pi], -1).reshape(-1, 2)
    idx = torch.arange((n_lat + 1) * (n_lon + 1)).reshape(n_lat + 1, n_lon + 1)
    a, b = idx[:-1, :-1].reshape(-1), idx[1:, :-1].reshape(-1)
    c, d = idx[1:, 1:].reshape(-1), idx[:-1, 1:].reshape(-1)
    faces = torch.cat([torch.stack([a, b, c], 1), torch.stack([a, c, d], 1)])
    return Mesh(verts.float(), faces, uvs.float())


def synthetic_scene(
    size: int, tex_size: int = 256, seed: int = 0, dtype: torch.dtype = torch.float32
) -> tuple[GBuffer, SceneMaps]:
    """A sphere covering about half of a ``size``² image, plus random maps and lighting."""
    cam = Camera(1.25 * size, 1.25 * size, size / 2.0, size / 2.0, size, size)
    gbuf = rasterize(uv_sphere(32, 64, 1.0, (0.0, 0.0, -3.0)), cam).to(dtype=dtype)
    g = torch.Generator().manual_seed(seed)
    t = tex_size

    def rand(c: int, lo: float, hi: float) -> torch.Tensor:
        return (lo + (hi - lo) * torch.rand(1, c, t, t, generator=g)).to(dtype)

    def unit_ts(tilt: float) -> torch.Tensor:
        xy = (torch.rand(1, 2, t, t, generator=g) - 0.5) * tilt
        return torch.nn.functional.normalize(torch.cat([xy, torch.ones(1, 1, t, t)], 1), dim=1).to(dtype)

    vis = torch.zeros(1, 9, t, t, dtype=dtype)
    vis[:, 0] = 2.0 * math.sqrt(math.pi) * 0.8
    vis[:, 2] = 0.5 * (1.0 + 0.2 * torch.rand(t, t, generator=g)).to(dtype)
    light = torch.randn(1, 3, 9, generator=g).to(dtype) * 0.3
    light[:, :, 0] = 2.0 * math.sqrt(math.pi)
    maps = SceneMaps(rand(3, 0.2, 0.8), rand(1, 0.3, 0.7), unit_ts(0.4), vis, unit_ts(0.6), light)
    return gbuf, maps


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_shading(prep: PreparedGBuffer, maps: SceneMaps, repeats: int = 10) -> tuple[float, float]:
    """Median wall time and median process CPU time (ms) of one forward + backward of
    :func:`shade_prepared` (CPU time is steadier on a shared machine; on CUDA it is the
    host time only)."""
    params = [maps.albedo, maps.specular, maps.normal, maps.light]
    leaves = [p.detach().clone().requires_grad_(True) for p in params]
    device = maps.albedo.device
    wall, cpu = [], []
    for i in range(repeats + 2):
        for p in leaves:
            p.grad = None
        _sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        out = shade_prepared(prep, leaves[0], leaves[1], leaves[3], normal=leaves[2], to_image=False)
        out.rgb.square().mean().backward()
        _sync(device)
        if i >= 2:  # warm-up
            wall.append((time.perf_counter() - t0) * 1e3)
            cpu.append((time.process_time() - c0) * 1e3)
    return statistics.median(wall), statistics.median(cpu)


def _thread_counts(device: torch.device) -> list[int]:
    """CPU: the current intra-op thread count and 1 (on a shared, busy machine one thread
    is often faster: OpenMP workers wait on each other); CUDA: the current one."""
    now = torch.get_num_threads()
    return [now] if device.type != "cpu" or now == 1 else [now, 1]


class _path:
    """Context manager selecting the fused or the reference shading path."""

    def __init__(self, name: str) -> None:
        self.name, self.old = name, os.environ.get("FACEREFL_FUSED")

    def __enter__(self) -> None:
        os.environ["FACEREFL_FUSED"] = "1" if self.name == "fused" else "0"

    def __exit__(self, *exc) -> None:
        if self.old is None:
            os.environ.pop("FACEREFL_FUSED", None)
        else:
            os.environ["FACEREFL_FUSED"] = self.old


class _threads:
    """Context manager setting ``torch.set_num_threads`` and restoring it."""

    def __init__(self, n: int) -> None:
        self.n, self.old = n, torch.get_num_threads()

    def __enter__(self) -> None:
        torch.set_num_threads(self.n)

    def __exit__(self, *exc) -> None:
        torch.set_num_threads(self.old)


def run(out_dir: Path) -> dict:
    """Time shading at every size on each available device; write ``out_dir/render.json``."""
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows = []
    for size in SIZES:
        gbuf, maps = synthetic_scene(size)
        for dev in devices:
            g = gbuf.to(device=dev)
            m = SceneMaps(*(getattr(maps, f).to(dev) for f in SceneMaps.__dataclass_fields__))
            prep = prepare_gbuffer(g, m.vis_sh, m.bent_normal)
            paths = ["fused", "reference"] if dev.type == "cpu" and fused.available() else ["reference"]
            for path, threads in ((p, t) for p in paths for t in _thread_counts(dev)):
                with _threads(threads), _path(path):
                    ms, cpu_ms = time_shading(prep, m, repeats=5 if size >= 1024 else 10)
                rows.append({
                    "device": dev.type,
                    "path": path,
                    "threads": threads,
                    "size": size,
                    "covered_pixels": int(g.mask.sum()),
                    "fwd_bwd_ms": round(ms, 2),
                    "fwd_bwd_cpu_ms": round(cpu_ms, 2),
                })
    result = {
        "benchmark": "render.shade_prepared fwd+bwd (texture lookup + lobe shading with "
                     "occlusion; fitting's call, to_image=False), 256² maps, float32",
        "threads": torch.get_num_threads(),
        # whether numba was allowed 512-bit vectors (fused._prefer_512_bit)
        "numba_512_bit": fused.WIDE_VECTORS in os.environ.get("NUMBA_CPU_FEATURES", ""),
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "rows": rows,
    }
    print(f"{'device':6s} {'path':9s} {'thr':>3s} {'size':>6s} {'pixels':>9s} {'fwd+bwd ms':>11s} {'cpu ms':>8s}")
    for r in rows:
        print(f"{r['device']:6s} {r['path']:9s} {r['threads']:>3d} {r['size']:>6d} {r['covered_pixels']:>9d} "
              f"{r['fwd_bwd_ms']:>11.2f} {r['fwd_bwd_cpu_ms']:>8.2f}")
    print(f"1-min load average {result['load_avg_1min']} (other processes slow the timings)")
    atomic_write_text(Path(out_dir) / "render.json", json.dumps(result, indent=2, sort_keys=True) + "\n",
                      make_parents=True)
    return result


if __name__ == "__main__":
    import sys

    run(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT_DIR)
