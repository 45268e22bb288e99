"""Fused CPU kernels for the fitting hot path: texture lookup + full shading, with backward.

:func:`facerefl.render.shading.shade_prepared` is the per-iteration cost of fitting. As
composed PyTorch it runs a few hundred element-wise operations over ``[B, C, P]`` tensors
(and as many in the backward pass), each one a full sweep over memory; on a 2-core CPU
that is about 120 ms per forward + backward at 512². This module computes the same
function pixel by pixel in one pass, with a hand-derived backward that recomputes the
forward quantities instead of storing them, compiled by numba (LLVM) once per dtype and
cached on disk. The math is exactly the ``_shade_cf`` path of ``shading.py`` (equation 5
with the occluded diffuse term of equation 7, the split-sum specular term in the
``lobe`` or ``paper`` form, tangent-space normal maps and the baked specular occlusion);
``tests/render/test_fused.py`` checks values and gradients against it. The kernels are
vectorized by LLVM (see :mod:`facerefl.render.fused_codegen`); the texture lookup's
backward pass reads the taps in texel order (:class:`Taps`) instead of scattering.

Scope (the fitting configuration; everything else falls back to the reference path):
CPU tensors of float32 or float64, a scalar roughness, baked visibility present, maps
``[1 or B, C, H, W]`` of any sizes. Gradients flow to the albedo, specular and normal maps
and to the SH lighting; the G-buffer and the baked data are constants.

Layout: per-pixel inputs are channel-first ``[B, C, P]`` as in :class:`PreparedGBuffer`;
lighting ``[B, 3, 9]`` linear RGB, camera frame; the lookup table column is ``[8, n_v]``
(A, B, s_A, g1_A, g2_A, s_B, g1_B, g2_B over ``n·v``, see :func:`~facerefl.render.brdf.split_sum_lookup`).

Set ``FACEREFL_FUSED=0`` to force the reference path (e.g. to compare timings).
"""

from __future__ import annotations

import functools
import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

__all__ = ["available", "supports", "Taps", "bilinear_taps", "constants", "paper_column", "shade_fused",
           "compile_kernels"]


def _switch(name: str) -> bool:
    """An on-by-default environment switch: off for ``0``, ``false`` or ``no``."""
    return os.environ.get(name, "1") not in ("0", "false", "no")


def _enabled() -> bool:
    return _switch("FACEREFL_FUSED")


#: numba CPU feature that lifts LLVM's preference for 256-bit vectors (see _prefer_512_bit).
WIDE_VECTORS = "-prefer-256-bit"


def _prefer_512_bit() -> None:
    """Let LLVM use 512-bit vectors where the CPU has AVX-512.

    LLVM's tuning for recent Intel cores prefers 256-bit vectors even when AVX-512 is
    present (wide vectors once lowered the clock). For these kernels the wide form is
    about 1.7× faster (measured: backward kernel 13.2 → 7.7 ms at 512² on this project's
    2-core Ice Lake CI machine), so unless the user configured numba's CPU features
    themselves (``NUMBA_CPU_FEATURES``) or set ``FACEREFL_WIDE_SIMD=0``, this sets them
    to the host's features minus the ``prefer-256-bit`` tuning flag. numba reads them
    when it first compiles anything, so this only takes effect if no numba function was
    compiled earlier in the process; it then applies to all numba code in the process
    (and to child processes, through the environment). Numerics do not change.
    """
    if os.environ.get("NUMBA_CPU_FEATURES") or not _switch("FACEREFL_WIDE_SIMD"):
        return
    import llvmlite.binding as ll

    ll.initialize_native_target()
    features = ll.get_host_cpu_features()
    if not features.get("avx512f", False):
        return
    os.environ["NUMBA_CPU_FEATURES"] = f"{features.flatten()},{WIDE_VECTORS}"
    import numba.core.config

    numba.core.config.reload_config()


@functools.lru_cache(maxsize=1)
def _module():
    """The kernel module (numba compiles each kernel on first call and caches it on
    disk), or None if numba cannot be imported."""
    try:
        _prefer_512_bit()
        from facerefl.render import _fused_kernels  # numba: optional, imported on first use
    except ImportError:  # pragma: no cover - numba is a pinned dependency
        return None
    return _fused_kernels


def available() -> bool:
    """Whether the fused kernels can run (numba importable, not disabled by the environment)."""
    return _enabled() and _module() is not None


def supports(*tensors: Tensor | None) -> bool:
    """Whether the fused path applies to these tensors: all on the CPU, float32 or float64,
    one dtype (``None`` entries are ignored), and :func:`available`."""
    ts = [t for t in tensors if t is not None]
    if not ts or not available():
        return False
    dtype = ts[0].dtype
    return dtype in (torch.float32, torch.float64) and all(t.device.type == "cpu" and t.dtype == dtype for t in ts)


# ------------------------------------------------------------------- inputs


class Taps(NamedTuple):
    """A bilinear lookup of one texture size at a G-buffer's pixels, both ways round.

    Forward (pixel order): ``idx [B, 4, P]`` int32 flat texel indices ``row·W + col`` of
    the four corners and their weights ``w [B, 4, P]``. Backward (texel order, the same
    ``4P`` entries per batch element sorted by texel, pixels ascending within one):
    ``start [B, H·W + 1]`` int64 offsets (texel t owns entries ``start[t] … start[t+1] − 1``),
    ``src [B, 4P]`` int32 pixel of each entry, ``wt [B, 4P]`` its weight. The backward
    pass then sums each texel's entries in a register instead of scattering ``4P``
    read-modify-writes into the gradient (about 2× faster, measured at 512²).
    """

    idx: Tensor
    w: Tensor
    start: Tensor
    src: Tensor
    wt: Tensor


def bilinear_taps(uv: Tensor, height: int, width: int, dtype: torch.dtype) -> Taps:
    """Corner indices and weights of a bilinear lookup, the same as
    :func:`~facerefl.render.texture.sample_texture` (``grid_sample``, border padding,
    ``align_corners=False``, v = 0 at the bottom row), with their texel-order transpose.

    Args:
        uv: ``[B, P, 2]`` texture coordinates.
        height, width: texture size.
        dtype: the texture dtype (coordinates are computed in it, as ``grid_sample`` does).

    Returns:
        :class:`Taps`.
    """
    u = uv[..., 0].to(dtype)
    v = uv[..., 1].to(dtype)
    gx, gy = u * 2 - 1, 1 - v * 2
    ix = (((gx + 1) * width - 1) / 2).clamp(0, width - 1)
    iy = (((gy + 1) * height - 1) / 2).clamp(0, height - 1)
    x0, y0 = ix.floor(), iy.floor()
    fx, fy = ix - x0, iy - y0
    x0l, y0l = x0.long(), y0.long()
    x1l, y1l = (x0l + 1).clamp_max(width - 1), (y0l + 1).clamp_max(height - 1)
    idx = torch.stack([y0l * width + x0l, y0l * width + x1l, y1l * width + x0l, y1l * width + x1l], 1)
    w = torch.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], 1)
    b, p = idx.shape[0], idx.shape[2]
    flat = idx.transpose(1, 2).reshape(b, 4 * p)  # pixel-major, so the stable sort keeps pixels ascending
    order = torch.argsort(flat, dim=1, stable=True)
    counts = torch.zeros(b, height * width + 1, dtype=torch.int64)
    counts[:, 1:].scatter_add_(1, flat, torch.ones_like(flat))
    wt = w.transpose(1, 2).reshape(b, 4 * p).gather(1, order)
    return Taps(idx.to(torch.int32).contiguous(), w.contiguous(), counts.cumsum(1),
                (order // 4).to(torch.int32).contiguous(), wt.contiguous())


def constants(normal: Tensor, tangent: Tensor, bitangent: Tensor, view_dir: Tensor,
              vis: Tensor | None, spec_occlusion: Tensor | None) -> Tensor:
    """Pack the per-pixel constants into ``[B, 22, P]`` (rows ``CST_ROWS`` of the
    generator): mesh frame and view ``[B, 3, P]`` each, visibility SH ``[B, 9, P]``
    (None: unoccluded, i.e. the constant 1 = ``2√π Y_00``, for which the triple product
    reduces exactly to the unoccluded irradiance), specular occlusion ``[B, 1, P]``
    (None: 1)."""
    b, _, p = normal.shape
    if vis is None:
        vis = normal.new_zeros(b, 9, p)
        vis[:, 0] = 2.0 * math.sqrt(math.pi)
    if spec_occlusion is None:
        spec_occlusion = normal.new_ones(b, 1, p)
    return torch.cat([normal, tangent, bitangent, view_dir, vis, spec_occlusion], 1).detach().contiguous()


def paper_column(column: Tensor) -> Tensor:
    """Lookup column for the ``"paper"`` form (equation 12 as written): the DFG rows kept,
    both lobes replaced by the clamped-cosine lobe about the normal (``s = 0``,
    ``g1 = 2/3``, ``g2 = 1/4``), so ``pre = E(n)/π``."""
    out = column.clone()
    out[2:] = torch.tensor([0.0, 2.0 / 3.0, 0.25] * 2, dtype=column.dtype)[:, None]
    return out


# ------------------------------------------------------------------- autograd


def _unsigned(index: Tensor):
    """A non-negative int32/int64 index tensor as an unsigned numpy view (numba then skips
    the negative-index wrap-around on every load it addresses)."""
    a = index.numpy()
    return a.view(np.uint32 if a.dtype == np.int32 else np.uint64)


def _kernel(name: str, dtype: torch.dtype):
    return getattr(_module(), f"{name}_{'f32' if dtype == torch.float32 else 'f64'}")


_MIN_CHUNK = 4096  # pixels; smaller ranges cost more in thread hand-off than they save


def _ranges(p: int) -> list[tuple[int, int]]:
    """Split ``p`` pixels into one contiguous range per torch intra-op thread (the entry
    scripts' ``threads=``), at most 4 and none smaller than ``_MIN_CHUNK`` pixels."""
    n = max(1, min(torch.get_num_threads(), 4, p // _MIN_CHUNK))
    return [(i * p // n, (i + 1) * p // n) for i in range(n)]


@functools.lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=4, thread_name_prefix="facerefl-shade")


def _run_each(kernel, calls: list[tuple]) -> None:
    """``kernel(*c)`` for each call, on the pool when torch may use more than one thread
    (the calls must touch disjoint outputs)."""
    if torch.get_num_threads() <= 1 or len(calls) <= 1:
        for c in calls:
            kernel(*c)
        return
    for f in [_pool().submit(kernel, *c) for c in calls]:
        f.result()


class _SampleShade(torch.autograd.Function):
    @staticmethod
    def forward(ctx, albedo, specular, normal, light, cst, taps, column):  # type: ignore[override]
        mod = _module()
        b, p = cst.shape[0], cst.shape[2]
        px = cst.new_empty(b, 7, p)
        texs = (albedo, specular, normal)
        rows = (0, 3, 4)
        jobs = []
        for tex, row0, tap in zip(texs, rows, taps):
            if tex is None:  # no normal map: the unperturbed mesh normal (0, 0, 1)
                px[:, 4:6] = 0.0
                px[:, 6] = 1.0
                continue
            t = tex.detach().reshape(tex.shape[0], tex.shape[1], -1).contiguous()
            jobs.append((t.numpy(), _unsigned(tap.idx), tap.w.numpy(), px.numpy(), row0))
        _run_each(mod.gather_fwd, jobs)  # one map per thread: disjoint rows of px
        lt = light.detach().contiguous()
        outs = [cst.new_empty(b, 3, p) for _ in range(3)]
        pxn, cn, ln, on = px.numpy(), cst.numpy(), lt.numpy(), [o.numpy() for o in outs]
        # one call per batch element and pixel range; every output row a separate array
        _run_each(_kernel("shade_fwd", cst.dtype),
                  [(pxn[i], cn[i], ln[i], column.numpy(), *(o[i, c] for o in on for c in range(3)), p0, p1)
                   for i in range(b) for p0, p1 in _ranges(p)])
        ctx.save_for_backward(px, lt)
        ctx.inputs = (cst, taps, column, rows, tuple(None if t is None else t.shape for t in texs))
        ctx.set_materialize_grads(False)  # unused outputs (often diffuse, specular) stay None
        return tuple(outs)

    @staticmethod
    def backward(ctx, g_rgb, g_dif, g_spe):  # type: ignore[override]
        mod = _module()
        px, lt = ctx.saved_tensors
        cst, taps, column, rows, shapes = ctx.inputs
        b, p = px.shape[0], px.shape[2]

        g_rgb = None if g_rgb is None else g_rgb.contiguous()

        def total(g1: Tensor | None, g2: Tensor | None) -> Tensor:
            if g1 is None and g2 is None:
                return px.new_zeros(b, 3, p)
            return g1 if g2 is None else g2.contiguous() if g1 is None else (g1 + g2).contiguous()

        # gradient reaching the diffuse term (rgb + diffuse) and the specular term (rgb + specular)
        grads_in = [total(g_rgb, g_dif).numpy(), total(g_rgb, g_spe).numpy()]
        gpx = torch.empty_like(px)
        ranges = _ranges(p)
        partial = torch.empty(b, len(ranges), 3, 9, dtype=torch.float64)
        pxn, cn, ln, gn, pn = px.numpy(), cst.numpy(), lt.numpy(), gpx.numpy(), partial.numpy()
        _run_each(_kernel("shade_bwd", cst.dtype),
                  [(pxn[i], cn[i], ln[i], column.numpy(), *(g[i] for g in grads_in),
                    *(gn[i, r] for r in range(gn.shape[1])), pn[i, k], p0, p1)
                   for i in range(b) for k, (p0, p1) in enumerate(ranges)])
        grads, jobs = [], []
        for shape, row0, tap, need in zip(shapes, rows, taps, ctx.needs_input_grad[:3]):
            if shape is None or not need:
                grads.append(None)
                continue
            g = gpx.new_zeros(shape[0], shape[1], shape[2] * shape[3])
            jobs.append((gpx.numpy(), row0, _unsigned(tap.start), _unsigned(tap.src), tap.wt.numpy(), g.numpy()))
            grads.append(g.view(shape))
        _run_each(mod.gather_bwd, jobs)  # one map per thread: separate gradient buffers
        return (*grads, partial.sum(1).to(lt.dtype), None, None, None)


def shade_fused(
    albedo: Tensor, specular: Tensor, normal: Tensor | None, light: Tensor,
    cst: Tensor, taps: tuple, column: Tensor,
) -> tuple[Tensor, Tensor, Tensor]:
    """Texture lookup + shading of ``shading._shade_cf`` in one fused step.

    Args:
        albedo: ``[1 or B, 3, Ha, Wa]`` linear albedo map; specular: ``[1 or B, 1, Hs, Ws]``
            t_r; normal: ``[1 or B, 3, Hn, Wn]`` tangent-space normal map or None.
        light: ``[B, 3, 9]`` SH radiance (linear RGB, camera frame).
        cst: ``[B, 22, P]`` from :func:`constants`.
        taps: per map, :class:`Taps` from :func:`bilinear_taps` for that map's size (None
            for a missing normal map).
        column: ``[8, n_v]`` lookup column (:func:`~facerefl.render.brdf.split_sum_lookup`'s
            channels at one roughness; :func:`paper_column` for the paper form).

    Returns:
        ``(rgb, diffuse, specular)``, each ``[B, 3, P]`` linear radiance; differentiable
        with respect to the three maps and the light.
    """
    return _SampleShade.apply(albedo, specular, normal, light, cst, taps, column)


def compile_kernels(dtypes: tuple[torch.dtype, ...] = (torch.float32,)) -> float:
    """Compile (or load from numba's on-disk cache) every kernel for ``dtypes`` by shading
    a few random pixels forward and backward; returns the seconds it took. ``make setup``
    runs this once so that the first fit does not pay the compilation (~20 s)."""
    import time

    t0 = time.perf_counter()
    if not available():
        return 0.0
    g = torch.Generator().manual_seed(0)
    for dtype in dtypes:
        p = 8
        frame = torch.eye(3, dtype=dtype)[:, :, None].expand(3, 3, p)
        cst = constants(frame[2][None], frame[0][None], frame[1][None], frame[2][None],
                        torch.rand(1, 9, p, generator=g).to(dtype), torch.ones(1, 1, p, dtype=dtype))
        uv = torch.rand(1, p, 2, generator=g).to(dtype)
        taps = (bilinear_taps(uv, 4, 4, dtype),) * 3
        maps = [torch.rand(1, c, 4, 4, generator=g).to(dtype).requires_grad_(True) for c in (3, 1, 3)]
        light = torch.rand(1, 3, 9, generator=g).to(dtype).requires_grad_(True)
        column = torch.rand(8, 16, generator=g).to(dtype)
        rgb = shade_fused(maps[0], maps[1], maps[2], light, cst, taps, column)[0]
        rgb.sum().backward()
    return time.perf_counter() - t0


if __name__ == "__main__":
    print(f"fused shading kernels ready ({compile_kernels():.1f} s)" if available()
          else "fused shading kernels unavailable (numba missing or FACEREFL_FUSED=0)")
