import math

import numpy as np
import pytest
import torch

from facerefl.render import brdf
from facerefl.render.sh import sphere_quadrature


@pytest.mark.parametrize("r", [0.3, 0.7])
def test_ggx_d_normalized(r):
    # ∫ D(h) (n·h) dh over the hemisphere = 1, by a fine quadrature in cos θ
    z, w = np.polynomial.legendre.leggauss(256)
    mu = torch.as_tensor(0.5 * (z + 1), dtype=torch.float64)
    d = brdf.ggx_d(mu, r)
    integral = (d * mu * torch.as_tensor(0.5 * w) * 2 * math.pi).sum()
    assert integral.item() == pytest.approx(1.0, abs=2e-3)


def test_smith_and_fresnel_values():
    nv = torch.tensor([0.5], dtype=torch.float64)
    nl = torch.tensor([0.8], dtype=torch.float64)
    a = 0.6**2
    lam = lambda c: 0.5 * (-1 + math.sqrt(1 + a * a * (1 - c * c) / (c * c)))  # noqa: E731
    g2 = 1 / (1 + lam(0.5) + lam(0.8))
    assert brdf.smith_visibility(nv, nl, 0.6).item() == pytest.approx(g2 / (4 * 0.5 * 0.8), rel=1e-10)
    f0 = torch.tensor(0.04)
    assert brdf.fresnel_schlick(torch.tensor(1.0), f0).item() == pytest.approx(0.04)
    assert brdf.fresnel_schlick(torch.tensor(0.0), f0).item() == pytest.approx(1.0)
    assert brdf.fresnel_schlick(torch.tensor(0.0), f0, 0.5).item() == pytest.approx(0.5)


def test_f0_mapping():
    t = torch.tensor([0.0, 0.1, 0.35, 1.0])
    f0 = brdf.f0_from_specular(t)
    assert f0.tolist() == pytest.approx([0.0, 0.008, 0.028, 0.08])
    assert brdf.f90_from_f0(f0).tolist() == pytest.approx([0.0, 0.4, 1.0, 1.0])


def test_hammersley():
    u = brdf.hammersley(64)
    assert u.shape == (64, 2) and u.min() >= 0 and u.max() < 1
    assert len(np.unique(u[:, 1])) == 64


def test_dfg_table_properties_and_mc():
    t = brdf.dfg_table(torch.float64)
    assert t.shape == (2, 64, 32)
    assert (t >= 0).all() and ((t[0, 7:] + t[1, 7:]) <= 1.0 + 2e-3).all()  # n·v ≥ 0.11
    assert (t[0, -1, 2] + t[1, -1, 2]).item() == pytest.approx(1.0, abs=0.01)  # smooth, normal incidence
    # independent pseudo-random Monte Carlo at one node: n·v = 40/63, r = 15/31
    rng = np.random.default_rng(0)
    nv, r = 40 / 63, 15 / 31
    a = r * r
    mu = rng.random(400000)
    phi = rng.random(400000) * 2 * math.pi
    # uniform hemisphere sampling of l
    l = np.stack([np.sqrt(1 - mu**2) * np.cos(phi), np.sqrt(1 - mu**2) * np.sin(phi), mu], 1)
    v = np.array([math.sqrt(1 - nv * nv), 0, nv])
    h = l + v
    h /= np.linalg.norm(h, axis=1, keepdims=True)
    tt = lambda x: torch.as_tensor(x)  # noqa: E731
    f = brdf.ggx_d(tt(h[:, 2]), r) * brdf.smith_visibility(tt(nv), tt(mu), r) * tt(mu) * 2 * math.pi
    fc = (1 - tt(h @ v)) ** 5
    assert (f * (1 - fc)).mean().item() == pytest.approx(t[0, 40, 15].item(), rel=0.01)
    assert (f * fc).mean().item() == pytest.approx(t[1, 40, 15].item(), rel=0.03)
    assert a > 0


def test_dfg_lookup_nodes_shapes_and_grad():
    t = brdf.dfg_table(torch.float64)
    nv = torch.tensor([[1.0, 40 / 63]], dtype=torch.float64)
    out = brdf.dfg_lookup(nv, torch.tensor([[0.0, 15 / 31]], dtype=torch.float64))
    assert out.shape == (1, 2, 2)
    assert torch.allclose(out[0, :, 1], t[:, 40, 15]) and torch.allclose(out[0, :, 0], t[:, 63, 0])
    assert brdf.dfg_lookup(torch.rand(3, 7), 0.5).shape == (3, 2, 7)
    with pytest.raises(ValueError, match=r"\[B, N\]"):
        brdf.dfg_lookup(torch.rand(7), 0.5)
    x = (torch.rand(1, 5, dtype=torch.float64) * 0.8 + 0.1).requires_grad_(True)
    y = (torch.rand(1, 5, dtype=torch.float64) * 0.8 + 0.1).requires_grad_(True)
    assert torch.autograd.gradcheck(brdf.dfg_lookup, (x, y))
    # the scalar-roughness fast path equals the general bilinear path
    for r in (0.0, 0.37, 0.6, 1.0):
        nv = torch.rand(2, 50, dtype=torch.float64)
        nv[0, :3] = torch.tensor([0.0, 1.0, 0.5])
        assert torch.allclose(brdf.dfg_lookup(nv, r), brdf.dfg_lookup(nv, torch.full_like(nv, r)), atol=1e-12)
    assert torch.autograd.gradcheck(lambda t: brdf.dfg_lookup(t, 0.45), (x,))


def test_lobe_band_factors():
    g = brdf.lobe_band_factors(0.5, dtype=torch.float64)
    assert g.shape == (3,) and g[0].item() == 1.0
    assert brdf.lobe_band_factors(torch.rand(2, 5)).shape == (2, 5, 3)
    r = torch.linspace(0.05, 1, 20, dtype=torch.float64)
    gr = brdf.lobe_band_factors(r)
    assert (gr[1:, 1] <= gr[:-1, 1] + 1e-12).all() and (gr[1:, 2] <= gr[:-1, 2] + 1e-12).all()
    assert brdf.lobe_band_factors(0.05)[2].item() > 0.999
    # direct quadrature of the normalized lobe's Legendre moments at normal incidence
    d, w = sphere_quadrature(2000, 1)
    mu = d[:, 2].clamp_min(0)
    nh = torch.sqrt((1 + mu) / 2)
    f = brdf.ggx_d(nh, 0.5) * brdf.smith_visibility(torch.tensor(1.0, dtype=torch.float64), mu.clamp_min(1e-9), 0.5) * mu * w
    g1 = (f * mu).sum() / f.sum()
    g2 = (f * 0.5 * (3 * mu * mu - 1)).sum() / f.sum()
    assert g[1].item() == pytest.approx(g1.item(), abs=2e-3)
    assert g[2].item() == pytest.approx(g2.item(), abs=2e-3)


def test_split_sum_table_and_lookup():
    t = brdf.split_sum_table(torch.float64)
    assert t.shape == (8, 64, 32)
    assert torch.equal(brdf.dfg_table(torch.float64), t[:2])
    g1, g2 = t[3], t[4]
    assert ((g1 > 0) & (g1 <= 1 + 1e-9)).all() and (g2 <= g1 + 1e-9).all()
    assert g1[-1, 1].item() > 0.98  # nearly a mirror at r = 1/31, normal incidence
    assert ((t[2] >= 0) & (t[2] <= 1.001)).all() and (t[5] >= 0).all()  # F0 lobe: D between n and R
    nv = torch.rand(1, 40, dtype=torch.float64)
    for r in (0.2, 0.55):
        assert torch.allclose(brdf.split_sum_lookup(nv, r), brdf.split_sum_lookup(nv, torch.full_like(nv, r)), atol=1e-12)


def test_lobe_moments_match_mc():
    # at one node, the F0-weighted lobe's mean direction from independent random sampling
    rng = np.random.default_rng(5)
    i, j = 20, 12  # n·v = 20/63, r = 12/31
    nv, r = i / 63, j / 31
    a2 = (r * r) ** 2
    h = brdf.sample_ggx_half(rng.random((400000, 2)), r * r)
    v = np.array([math.sqrt(1 - nv * nv), 0.0, nv])
    vh = h @ v
    l = 2 * vh[:, None] * h - v
    ok = (l[:, 2] > 0) & (vh > 0)
    nl = np.where(ok, l[:, 2], 1.0)
    vis = 0.5 / (nl * np.sqrt(nv * nv * (1 - a2) + a2) + nv * np.sqrt(nl * nl * (1 - a2) + a2))
    w = np.where(ok, 4 * vis * nl * vh / h[:, 2], 0.0) * (1 - (1 - np.clip(vh, 0, 1)) ** 5)
    m = (w[:, None] * l).sum(0) / w.sum()
    t = brdf.split_sum_table(torch.float64)
    s, g1 = t[2, i, j].item(), t[3, i, j].item()
    assert np.linalg.norm(m) == pytest.approx(g1, abs=5e-3)
    refl = np.array([-v[0], 0.0, v[2]])
    d = np.array([0.0, 0.0, 1.0]) + s * (refl - np.array([0.0, 0.0, 1.0]))
    assert np.dot(d / np.linalg.norm(d), m / np.linalg.norm(m)) > 1 - 1e-4
