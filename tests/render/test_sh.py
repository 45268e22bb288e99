import math

import pytest
import torch

from facerefl.render import sh


def _rand_dirs(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(n, 3, generator=g, dtype=torch.float64)
    return d / d.norm(dim=-1, keepdim=True)


def _rand_rotation(seed=0):
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def test_basis_shape_and_convention():
    d = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    y = sh.sh_basis(d)
    assert y.shape == (3, 9)
    c1 = math.sqrt(3 / (4 * math.pi))
    # +z: Y10 and Y20 nonzero; +x: Y11 and Y22; +y: Y1-1 and (negative) Y22
    assert y[0, 2] == pytest.approx(c1) and y[0, 6] == pytest.approx(2 * 0.25 * math.sqrt(5 / math.pi))
    assert y[1, 3] == pytest.approx(c1) and y[1, 8] > 0
    assert y[2, 1] == pytest.approx(c1) and y[2, 8] < 0
    xy = torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64) / math.sqrt(2)
    assert sh.sh_basis(xy)[4] > 0  # Y2-2 ∝ +xy
    assert sh.sh_basis(torch.rand(2, 4, 5, 3)).shape == (2, 4, 5, 9)


def test_basis_orthonormal():
    d, w = sh.sphere_quadrature(6, 12)
    assert w.sum().item() == pytest.approx(4 * math.pi)
    y = sh.sh_basis(d)
    gram = (y * w[:, None]).T @ y
    assert torch.allclose(gram, torch.eye(9, dtype=torch.float64), atol=1e-12)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"\[\.\.\., 3\]"):
        sh.sh_basis(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="values"):
        sh.project_to_sh(torch.zeros(4, 3), torch.zeros(5, 1), torch.zeros(4))
    with pytest.raises(ValueError, match="weights"):
        sh.project_to_sh(torch.zeros(4, 3), torch.zeros(4, 1), torch.zeros(3))
    with pytest.raises(ValueError, match="rot"):
        sh.sh_rotate(torch.zeros(9), torch.eye(4))
    with pytest.raises(ValueError, match=r"\[B, C, 9\]"):
        sh.sh_eval(torch.zeros(3, 9), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="a must"):
        sh.sh_product(torch.zeros(8), torch.zeros(9))


def test_projection_roundtrip():
    d, w = sh.sphere_quadrature(8, 16)
    c = torch.randn(2, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    values = sh.sh_basis(d) @ c.T  # [N, 2]
    assert torch.allclose(sh.project_to_sh(d, values, w), c, atol=1e-12)
    # Monte Carlo weights also converge
    dm = _rand_dirs(200000, seed=3)
    cm = sh.project_to_sh(dm, sh.sh_basis(dm) @ c.T, torch.full((200000,), 4 * math.pi / 200000, dtype=torch.float64))
    assert torch.allclose(cm, c, atol=0.05)


def test_irradiance_matches_quadrature():
    light = torch.randn(1, 3, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    n = _rand_dirs(5, seed=4)
    d, w = sh.sphere_quadrature(64, 128)
    radiance = sh.sh_basis(d) @ light[0].T  # [N, 3]
    cos = (n @ d.T).clamp_min(0)  # [5, N]
    ref = (cos * w) @ radiance
    got = sh.irradiance(light, n[None])[0]
    assert torch.allclose(got, ref, rtol=2e-4, atol=2e-4)


def test_rotation_exact_and_composes():
    rot = _rand_rotation(5)
    c = torch.randn(4, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    d = _rand_dirs(50, seed=7)
    # g(ω) = f(Rᵀ ω)
    f_back = sh.sh_basis(d @ rot) @ c.T  # rows: f(Rᵀ d)
    g = sh.sh_basis(d) @ sh.sh_rotate(c, rot).T
    assert torch.allclose(g, f_back, atol=1e-12)
    r2 = _rand_rotation(8)
    assert torch.allclose(sh.sh_rotate(sh.sh_rotate(c, rot), r2), sh.sh_rotate(c, r2 @ rot), atol=1e-12)
    m = sh.sh_rotation_matrix(rot)
    assert torch.allclose(m @ m.T, torch.eye(9, dtype=torch.float64), atol=1e-12)
    assert m[0, 1:].abs().max() < 1e-12 and m[1:4, 4:].abs().max() < 1e-12


def test_mirror_x_reflects_the_function_and_is_an_involution():
    c = torch.randn(2, 3, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    d = _rand_dirs(60, seed=10)
    dm = d * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    # g(x, y, z) = f(-x, y, z) at every direction
    assert torch.allclose(sh.sh_basis(d) @ sh.sh_mirror_x(c)[..., None], sh.sh_basis(dm) @ c[..., None], atol=1e-12)
    assert torch.equal(sh.sh_mirror_x(sh.sh_mirror_x(c)), c)
    # a reflection has determinant -1: no rotation matrix gives it
    assert not torch.allclose(sh.sh_mirror_x(c), c)


def test_rotate_batched_and_gradcheck():
    rots = torch.stack([_rand_rotation(i) for i in range(2)])[:, None]  # [2,1,3,3]
    light = torch.randn(2, 3, 9, dtype=torch.float64)
    out = sh.sh_rotate(light, rots)
    assert out.shape == (2, 3, 9)
    assert torch.allclose(out[1], sh.sh_rotate(light[1], rots[1, 0]), atol=1e-12)
    c = torch.randn(2, 9, dtype=torch.float64, requires_grad=True)
    r = _rand_rotation(9).requires_grad_(True)
    assert torch.autograd.gradcheck(sh.sh_rotate, (c, r))


def test_triple_product_matches_pointwise_product():
    t = sh.triple_product_tensor(torch.float64)
    assert t.shape == (9, 9, 9)
    assert torch.allclose(t, t.permute(1, 0, 2)) and torch.allclose(t, t.permute(2, 1, 0))
    assert t[0, 0, 0].item() == pytest.approx(0.5 / math.sqrt(math.pi))
    assert (t == 0).sum() > 500  # sparse
    g = torch.Generator().manual_seed(10)
    a = torch.randn(3, 9, dtype=torch.float64, generator=g)
    b = torch.randn(3, 9, dtype=torch.float64, generator=g)
    d, w = sh.sphere_quadrature(8, 16)
    y = sh.sh_basis(d)
    prod = (y @ a.T) * (y @ b.T)  # [N, 3]
    ref = sh.project_to_sh(d, prod, w)
    assert torch.allclose(sh.sh_product(a, b), ref, atol=1e-12)
    assert torch.allclose(sh.sh_product(a, b), sh.sh_product(b, a), atol=1e-12)


def test_product_gradcheck():
    a = torch.randn(2, 9, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, 9, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(sh.sh_product, (a, b))


def test_convolve_and_expand():
    c = torch.ones(2, 9)
    out = sh.sh_convolve(c, sh.COSINE_BAND_WEIGHTS)
    assert out[0, 0].item() == pytest.approx(math.pi)
    assert out[0, 3].item() == pytest.approx(2 * math.pi / 3)
    assert out[0, 8].item() == pytest.approx(math.pi / 4)
    per = sh.expand_bands(torch.tensor([[1.0, 2.0, 3.0]]))
    assert per.tolist() == [[1, 2, 2, 2, 3, 3, 3, 3, 3]]
    with pytest.raises(ValueError):
        sh.expand_bands(torch.zeros(4))


def test_basis_channel_first():
    d = torch.nn.functional.normalize(torch.randn(2, 3, 7, dtype=torch.float64), dim=1)
    assert torch.allclose(sh.sh_basis(d, dim=1), sh.sh_basis(d.transpose(1, 2)).transpose(1, 2))
    with pytest.raises(ValueError, match="3 components"):
        sh.sh_basis(torch.zeros(2, 4, 7), dim=1)


def test_product_cf_matches_dense_and_gradcheck():
    g = torch.Generator().manual_seed(11)
    a = torch.randn(2, 9, 5, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(2, 9, 5, dtype=torch.float64, generator=g, requires_grad=True)
    ref = sh.sh_product(a.transpose(1, 2), b.transpose(1, 2)).transpose(1, 2)
    assert torch.allclose(sh.sh_product_cf(a, b), ref, atol=1e-12)
    bw = sh.COSINE_BAND_WEIGHTS
    ref_w = sh.sh_product(a.transpose(1, 2), sh.sh_convolve(b.transpose(1, 2), bw)).transpose(1, 2)
    assert torch.allclose(sh.sh_product_cf(a, b, bw), ref_w, atol=1e-12)
    assert torch.autograd.gradcheck(lambda x, y: sh.sh_product_cf(x, y, bw), (a, b))
    with pytest.raises(ValueError, match="same shape"):
        sh.sh_product_cf(a, b[:, :, :3])
    with pytest.raises(ValueError, match=r"\[B, 9, N\]"):
        sh.sh_product_cf(a[:, :4], b[:, :4])


def test_eval_cf_matches_eval_and_gradcheck():
    g = torch.Generator().manual_seed(12)
    c = torch.randn(2, 3, 9, dtype=torch.float64, generator=g, requires_grad=True)
    d = torch.nn.functional.normalize(torch.randn(2, 3, 6, dtype=torch.float64, generator=g), dim=1)
    d.requires_grad_(True)
    ref = sh.sh_eval(c, d.transpose(1, 2)).transpose(1, 2)
    assert torch.allclose(sh.sh_eval_cf(c, d), ref, atol=1e-12)
    assert torch.autograd.gradcheck(sh.sh_eval_cf, (c, d))
    with pytest.raises(ValueError, match=r"\[B=2, 3, N\]"):
        sh.sh_eval_cf(c, d[:, :2])


def test_eval_bands_cf_sum_to_eval():
    g = torch.Generator().manual_seed(13)
    c = torch.randn(1, 3, 9, dtype=torch.float64, generator=g)
    d = torch.nn.functional.normalize(torch.randn(1, 3, 5, dtype=torch.float64, generator=g), dim=1)
    b0, b1, b2 = sh.sh_eval_bands_cf(c, d)
    assert b0.shape == (1, 3, 1) and b1.shape == b2.shape == (1, 3, 5)
    only1 = c.clone()
    only1[..., [0, 4, 5, 6, 7, 8]] = 0
    assert torch.allclose(b1, sh.sh_eval_cf(only1, d), atol=1e-12)
    assert torch.allclose(b0 + b1 + b2, sh.sh_eval(c, d.transpose(1, 2)).transpose(1, 2), atol=1e-12)
