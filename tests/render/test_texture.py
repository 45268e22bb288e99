import pytest
import torch

from facerefl.render.texture import sample_texture


def test_texel_centres_and_v_convention():
    tex = torch.arange(12.0).view(1, 1, 3, 4)
    # v = 1 - (i + .5)/H addresses row i; u = (j + .5)/W addresses column j.
    for i in range(3):
        for j in range(4):
            uv = torch.tensor([[[(j + 0.5) / 4, 1 - (i + 0.5) / 3]]])
            assert float(sample_texture(tex, uv)) == pytest.approx(float(tex[0, 0, i, j]), abs=1e-5)


def test_shapes_broadcast_and_gathered_lists():
    tex = torch.rand(1, 3, 8, 8)
    assert sample_texture(tex, torch.rand(2, 5, 7, 2)).shape == (2, 5, 7, 3)
    assert sample_texture(tex, torch.rand(1, 100, 2)).shape == (1, 100, 3)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="tex"):
        sample_texture(torch.rand(3, 8, 8), torch.rand(1, 4, 2))
    with pytest.raises(ValueError, match="uv"):
        sample_texture(torch.rand(1, 3, 8, 8), torch.rand(1, 4, 3))
    with pytest.raises(ValueError, match="batch"):
        sample_texture(torch.rand(2, 3, 8, 8), torch.rand(3, 4, 2))


def test_gradcheck_texture_and_uv():
    tex = torch.rand(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    uv = (torch.rand(1, 7, 2, dtype=torch.float64) * 0.8 + 0.1).requires_grad_(True)
    assert torch.autograd.gradcheck(sample_texture, (tex, uv))
