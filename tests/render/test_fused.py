"""The fused CPU kernels (render/fused.py) against the composed-PyTorch reference path."""

import re

import llvmlite.binding as llvm
import numpy as np
import pytest
import torch

from bench.render import synthetic_scene
from facerefl.render import fused, fused_codegen
from facerefl.render import shading as S

pytestmark = pytest.mark.skipif(not fused.available(), reason="numba kernels unavailable")


def _scene(dtype, size=24, tex=16, seed=0):
    gbuf, maps = synthetic_scene(size, tex_size=tex, seed=seed, dtype=dtype)
    return gbuf, maps


def _both(prep, albedo, specular, light, normal, **kw):
    """(fused, reference) Shading and the gradients of a random projection of all outputs."""
    leaves = [x.detach().clone().requires_grad_(True) for x in (albedo, specular, light)]
    nrm = None if normal is None else normal.detach().clone().requires_grad_(True)
    inputs = leaves + ([nrm] if nrm is not None else [])
    assert S._fused_applies(prep, leaves[0], leaves[1], nrm, leaves[2], kw.get("roughness", 0.6))
    fast = S.shade_prepared(prep, leaves[0], leaves[1], leaves[2], normal=nrm, to_image=False, **kw)
    ref = S._shade_prepared_reference(prep, leaves[0], leaves[1], leaves[2], nrm,
                                      kw.get("roughness", 0.6), kw.get("spec_model", "lobe"))
    ref = S.Shading(*(x.transpose(1, 2) for x in ref))
    g = torch.Generator().manual_seed(1)
    w = [torch.randn(fast.rgb.shape, generator=g, dtype=fast.rgb.dtype) for _ in range(3)]

    def proj(out):
        return sum((x * wi).sum() for x, wi in zip((out.rgb, out.diffuse, out.specular), w))

    return fast, ref, torch.autograd.grad(proj(fast), inputs), torch.autograd.grad(proj(ref), inputs)


def _close(a, b, rtol):
    scale = b.abs().max().clamp_min(1e-30)
    assert ((a - b).abs().max() / scale).item() <= rtol, ((a - b).abs().max() / scale).item()


def test_generated_kernels_are_up_to_date():
    assert fused_codegen.main(["--check"]) == 0


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("spec_model", S.SPEC_MODELS)
def test_values_and_gradients_match_reference(dtype, rtol, spec_model):
    gbuf, m = _scene(dtype)
    prep = S.prepare_gbuffer(gbuf, m.vis_sh, m.bent_normal)
    fast, ref, gf, gr = _both(prep, m.albedo, m.specular, m.light, m.normal, spec_model=spec_model)
    for a, b in zip((fast.rgb, fast.diffuse, fast.specular), (ref.rgb, ref.diffuse, ref.specular)):
        _close(a.detach(), b.detach(), rtol)
    for a, b in zip(gf, gr):
        _close(a, b, rtol * 10)


def test_optional_inputs_map_sizes_and_batch_broadcast():
    gbuf, m = _scene(torch.float64, size=20, tex=16)
    two = lambda x: torch.cat([x, x])  # noqa: E731
    from dataclasses import fields, replace
    gb = replace(gbuf, **{f.name: two(getattr(gbuf, f.name)) for f in fields(gbuf)})
    # no visibility / bent normal, no normal map, maps of different sizes shared by the batch
    prep = S.prepare_gbuffer(gb)
    albedo = torch.nn.functional.interpolate(m.albedo, size=(32, 32), mode="bilinear")
    fast, ref, gf, gr = _both(prep, albedo, m.specular, two(m.light), None, roughness=0.35)
    # unit visibility through the (quadrature-built) triple product vs plain irradiance
    _close(fast.rgb.detach(), ref.rgb.detach(), 1e-7)
    for a, b in zip(gf, gr):
        assert a.shape == b.shape
        _close(a, b, 1e-6)
    # visibility without bent normal (no specular occlusion), normal map at its own size
    prep = S.prepare_gbuffer(gbuf, m.vis_sh)
    normal = torch.nn.functional.interpolate(m.normal, size=(8, 8), mode="bilinear")
    fast, ref, gf, gr = _both(prep, m.albedo, m.specular, m.light, normal)
    _close(fast.rgb.detach(), ref.rgb.detach(), 1e-12)
    for a, b in zip(gf, gr):
        _close(a, b, 1e-10)


def test_gradcheck_through_shade_prepared():
    gbuf, m = _scene(torch.float64, size=10, tex=4, seed=3)
    prep = S.prepare_gbuffer(gbuf, m.vis_sh, m.bent_normal)
    spec = m.specular * 0.5 + 0.3  # away from the f90 = saturate(50 F0) kink

    def fn(a, s, lt, n):
        return S.shade_prepared(prep, a, s, lt, normal=n, to_image=False).rgb

    args = tuple(x.clone().requires_grad_(True) for x in (m.albedo, spec, m.light, m.normal))
    assert S._fused_applies(prep, *args[:2], args[3], args[2], 0.6)
    assert torch.autograd.gradcheck(fn, args)


def test_parallel_chunks_match_one_thread(monkeypatch):
    gbuf, m = _scene(torch.float32, size=32)
    prep = S.prepare_gbuffer(gbuf, m.vis_sh, m.bent_normal)
    monkeypatch.setattr(fused, "_MIN_CHUNK", 64)  # so that this small scene splits
    old = torch.get_num_threads()
    outs = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            assert len(fused._ranges(prep.index.shape[1])) == threads
            light = m.light.clone().requires_grad_(True)
            out = S.shade_prepared(prep, m.albedo, m.specular, light, normal=m.normal, to_image=False)
            (g,) = torch.autograd.grad(out.rgb.sum(), light)
            outs.append((out.rgb.detach(), g))
    finally:
        torch.set_num_threads(old)
    # not bit-equal: where a range ends, a pixel may land in the vector loop's scalar tail,
    # whose fast reciprocal square root (fastmath "afn") rounds differently
    _close(outs[1][0], outs[0][0], 1e-6)
    _close(outs[1][1], outs[0][1], 1e-6)


def test_non_finite_inputs_propagate():
    gbuf, m = _scene(torch.float32)
    prep = S.prepare_gbuffer(gbuf, m.vis_sh, m.bent_normal)
    light = m.light.clone()
    light[0, 0, 0] = float("nan")
    out = S.shade_prepared(prep, m.albedo, m.specular, light, normal=m.normal, to_image=False)
    assert torch.isnan(out.rgb).any()


def test_reference_path_when_disabled_or_unsupported(monkeypatch):
    gbuf, m = _scene(torch.float64)
    prep = S.prepare_gbuffer(gbuf, m.vis_sh, m.bent_normal)
    rough_map = torch.full((1, 1, 16, 16), 0.6, dtype=torch.float64)
    assert not S._fused_applies(prep, m.albedo, m.specular, m.normal, m.light, rough_map)
    assert not S._fused_applies(prep, m.albedo.float(), m.specular, m.normal, m.light, 0.6)
    a = S.shade_prepared(prep, m.albedo, m.specular, m.light, normal=m.normal)
    monkeypatch.setenv("FACEREFL_FUSED", "0")
    assert not fused.available()
    b = S.shade_prepared(prep, m.albedo, m.specular, m.light, normal=m.normal)
    c = S.shade_prepared(prep, m.albedo, m.specular, m.light, normal=m.normal, roughness=rough_map)
    assert torch.allclose(a.rgb, b.rgb, atol=1e-12) and torch.allclose(b.rgb, c.rgb, atol=1e-12)


def test_texel_order_is_the_transpose_of_the_taps():
    g = torch.Generator().manual_seed(3)
    uv = torch.rand(2, 50, 2, generator=g, dtype=torch.float64) * 1.2 - 0.1  # some outside [0, 1]
    h, w = 7, 5
    taps = fused.bilinear_taps(uv, h, w, torch.float64)
    for b in range(2):
        by_pixel = torch.zeros(50, h * w, dtype=torch.float64)
        by_pixel.index_put_((torch.arange(50).repeat(4), taps.idx[b].long().reshape(-1)),
                            taps.w[b].reshape(-1), accumulate=True)
        by_texel = torch.zeros(50, h * w, dtype=torch.float64)
        start = taps.start[b]
        assert start[0] == 0 and start[-1] == 200 and bool((start.diff() >= 0).all())
        for t in range(h * w):
            src = taps.src[b, start[t]:start[t + 1]].long()
            assert bool((src.diff() >= 0).all())  # pixels ascend within a texel
            by_texel[:, t].index_add_(0, src, taps.wt[b, start[t]:start[t + 1]])
        torch.testing.assert_close(by_texel, by_pixel, rtol=0, atol=1e-15)


def _fresh_kernels(promise: bool = True):
    """The generated kernels compiled anew (numba will not show the assembly of cached code);
    without ``promise``, with numba's plain compiler instead of the noalias one."""
    ns: dict = {}
    src = fused_codegen.generate().replace("cache=True", "cache=False")
    if not promise:
        assert "pipeline_class=_NoAlias" in src
        src = src.replace("pipeline_class=_NoAlias", "pipeline_class=numba.core.compiler.Compiler")
    exec(compile(src, "fresh", "exec"), ns)
    return ns


def _count(dispatcher, pattern: str) -> int:
    return len(re.findall(pattern, "".join(dispatcher.inspect_asm().values())))


PACKED = r"\tv\w+p[sd]\s[^\n]*[yz]mm"  # packed float arithmetic on 256/512-bit registers
GATHER = r"\tvp?gather"  # vector gathers

x86_avx2 = pytest.mark.skipif(not llvm.get_host_cpu_features().get("avx2", False),
                              reason="vector instructions checked on x86 with AVX2")


@x86_avx2
def test_texture_lookup_compiles_to_vector_code():
    """The noalias promise lets LLVM vectorize the pixel loop. How depends on the CPU's cost
    model: with gathers where they are cheap (measured on an AVX-512 Xeon: 12 gathers, 0
    without the promise), with packed arithmetic on scalar loads where they are not
    (measured on an AVX2 EPYC: 0 gathers, 33 packed operations, 18 without the promise)."""
    tex, out = np.random.rand(1, 3, 64).astype(np.float32), np.zeros((1, 7, 100), np.float32)
    idx = np.random.randint(0, 64, (1, 4, 100)).astype(np.uint32)
    counts = []
    for promise in (True, False):
        k = _fresh_kernels(promise)["gather_fwd"]
        k(tex, idx, np.random.rand(1, 4, 100).astype(np.float32), out, 0)
        counts.append(_count(k, GATHER) + _count(k, PACKED))
    assert counts[0] > counts[1], counts


@pytest.mark.slow
@x86_avx2
def test_shading_kernels_compile_to_vector_code():
    """Packed operations (forward / backward) with the noalias promise against without it.
    Measured: 624 / 1282 on an AVX-512 Xeon (about 30 / 40 scalar); 587 / 313 against 44 / 50
    on an AVX2 EPYC. The loops count as vectorized at four times the scalar count."""
    p, f = 100, np.float32
    px, cst, light, col = (np.random.rand(*s).astype(f) for s in ((7, p), (22, p), (3, 9), (8, 16)))
    counts = []
    for promise in (True, False):
        ns = _fresh_kernels(promise)
        rows = [np.zeros(p, f) for _ in range(9)]
        ns["shade_fwd_f32"](px, cst, light, col, *rows, 0, p)
        ns["shade_bwd_f32"](px, cst, light, col, px[:3], px[:3], *rows[:7], np.zeros((3, 9)), 0, p)
        counts.append((_count(ns["shade_fwd_f32"], PACKED), _count(ns["shade_bwd_f32"], PACKED)))
    (fwd, bwd), (fwd0, bwd0) = counts
    assert fwd > 4 * fwd0 and bwd > 4 * bwd0, counts
