import pytest
import torch

from facerefl.render.color import linear_to_srgb, srgb_to_linear


def test_known_values():
    x = torch.tensor([0.0, 0.04045, 0.5, 1.0], dtype=torch.float64)
    lin = srgb_to_linear(x)
    assert torch.allclose(lin, torch.tensor([0.0, 0.04045 / 12.92, 0.21404114, 1.0], dtype=torch.float64), atol=1e-7)


def test_roundtrip_and_shape():
    x = torch.rand(2, 5, 7, 3, dtype=torch.float64)
    assert srgb_to_linear(x).shape == x.shape
    assert torch.allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-12)
    assert torch.allclose(srgb_to_linear(linear_to_srgb(x)), x, atol=1e-12)


def test_continuous_at_knee():
    eps = 1e-9
    k = torch.tensor([0.04045 - eps, 0.04045 + eps], dtype=torch.float64)
    v = srgb_to_linear(k)
    assert abs(v[1] - v[0]) < 1e-7
    k2 = torch.tensor([0.0031308 - eps, 0.0031308 + eps], dtype=torch.float64)
    v2 = linear_to_srgb(k2)
    assert abs(v2[1] - v2[0]) < 1e-6


def test_clamp_and_safe_gradients():
    x = torch.tensor([-0.5, 0.0, 1e-8, 0.3, 1.5], dtype=torch.float64, requires_grad=True)
    for fn in (srgb_to_linear, linear_to_srgb):
        for clamp in (True, False):
            (g,) = torch.autograd.grad(fn(x, clamp=clamp).sum(), x)
            assert torch.isfinite(g).all()
    y = linear_to_srgb(x.detach())
    assert y.min() >= 0 and y.max() <= 1
    # without clamping, over-exposure keeps a gradient and values above 1
    y2 = linear_to_srgb(torch.tensor([2.0]), clamp=False)
    assert y2.item() > 1.0


@pytest.mark.parametrize("fn", [srgb_to_linear, linear_to_srgb])
def test_gradcheck(fn):
    x = (torch.rand(12, dtype=torch.float64) * 0.9 + 0.05).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: fn(t), (x,))
