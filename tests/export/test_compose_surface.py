from __future__ import annotations

import numpy as np
import pytest
import torch

from facerefl.export.compose import composite_over_photo, rgba_rendering, side_by_side
from facerefl.export.surface import make_surface, vertex_tangents
from facerefl.render.color import linear_to_srgb

from .conftest import uv_sphere


def test_composite_uses_mask_and_encodes_rendering():
    rendering = torch.full((3, 2, 2), 0.2)
    photo = torch.full((3, 2, 2), 0.7)
    mask = torch.tensor([[[1.0, 0.0], [0.5, 0.0]]])
    out = composite_over_photo(rendering, photo, mask)
    enc = float(linear_to_srgb(torch.tensor(0.2)))
    assert out[0, 0, 0] == pytest.approx(enc) and out[0, 0, 1] == pytest.approx(0.7)
    assert out[0, 1, 0] == pytest.approx(0.5 * enc + 0.35)
    rgba = rgba_rendering(rendering, mask)
    assert rgba.shape == (4, 2, 2) and torch.equal(rgba[3], mask[0])
    sbs = side_by_side(photo, out, gain=2.0, gap=1)
    assert sbs.shape == (3, 2, 8)
    assert sbs[0, 0, 6] == pytest.approx(min(1.0, 2 * abs(0.7 - enc)))  # gained |difference|
    with pytest.raises(ValueError, match="mask"):
        composite_over_photo(rendering, photo, mask[:, :1])


def test_make_surface_computes_outward_normals():
    s = uv_sphere()
    bare = make_surface(s.positions, s.faces, s.uvs)
    assert np.sum(bare.normals * s.normals, axis=1).min() > 0.95
    with pytest.raises(ValueError, match="negative"):
        make_surface(s.positions, -np.ones((1, 3), int), s.uvs)
    with pytest.raises(ValueError, match="uvs"):
        make_surface(s.positions, s.faces, s.uvs[:-1])


def test_tangents_without_uv_gradient_are_still_a_frame():
    pos = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    uv = np.full((3, 2), 0.5, np.float32)  # all texels the same: no dP/du
    t = vertex_tangents(make_surface(pos, np.array([[0, 1, 2]]), uv))
    assert np.isfinite(t).all() and np.allclose(t[:, 3], 1.0)
    assert np.allclose(np.linalg.norm(t[:, :3], axis=1), 1.0, atol=1e-6)
    assert np.abs(t[:, 2]).max() < 1e-6  # perpendicular to the +z normal
