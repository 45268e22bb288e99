from collections import Counter

import numpy as np
import pytest
import torch

from facerefl.data.layout import face_layout
from facerefl.data.procedural import resize_reflectance, sample_params, synthesize
from facerefl.data.skin import ITA_CATEGORIES, ita_category, ita_degrees


def _cheek_ita(size, seed):
    lay = face_layout(size)
    r = synthesize(sample_params(np.random.default_rng(seed)), size)
    sel = torch.from_numpy((lay.cheeks > 0.5) & (lay.skin > 0.5))
    mean = r.albedo[:, sel].mean(dim=1).double().numpy()
    return float(ita_degrees(mean))


def test_ita_coverage_over_1000_faces():
    cats = Counter(ita_category(_cheek_ita(64, seed)) for seed in range(1000))
    shares = {name: cats[name] / 1000 for name, _ in ITA_CATEGORIES}
    assert all(v >= 0.05 for v in shares.values()), shares


def test_same_params_bit_identical_and_seeds_differ():
    p = sample_params(np.random.default_rng(5))
    a, b = synthesize(p, 128), synthesize(p, 128)
    for x, y in ((a.albedo, b.albedo), (a.specular, b.specular), (a.normal, b.normal)):
        assert torch.equal(x, y)
    c = synthesize(sample_params(np.random.default_rng(6)), 128)
    assert not torch.equal(a.albedo, c.albedo) and not torch.equal(a.normal, c.normal)


def test_map_ranges_and_units():
    r = synthesize(sample_params(np.random.default_rng(1)), 128)
    assert r.albedo.shape == (3, 128, 128) and r.specular.shape == (1, 128, 128)
    assert 0.0 <= float(r.albedo.min()) and float(r.albedo.max()) <= 1.0
    assert 0.0 <= float(r.specular.min()) and float(r.specular.max()) <= 1.0
    assert torch.allclose(r.normal.norm(dim=0), torch.ones(128, 128), atol=1e-5)
    assert float(r.normal[2].min()) > 0.2  # relief, not garbage
    assert float((1 - r.normal[2]).max()) > 1e-3  # there is relief


def test_regional_variation():
    lay = face_layout(128)
    specs, lips_red, brow_dark = [], [], []
    for seed in range(20):
        r = synthesize(sample_params(np.random.default_rng(seed)), 128)
        m = lambda w: torch.from_numpy(w > 0.5)  # noqa: E731
        s = r.specular[0]
        specs.append((s[m(lay.forehead)].mean() - s[m(lay.cheeks) & ~m(lay.nose)].mean()).item())
        lips, cheek = r.albedo[:, m(lay.lips)].mean(1), r.albedo[:, m(lay.cheeks)].mean(1)
        lips_red.append((lips[0] / lips[1] - cheek[0] / cheek[1]).item())
        brow_dark.append((r.albedo[:, m(lay.brows)].mean() - r.albedo[:, m(lay.forehead)].mean()).item())
    assert np.mean(specs) > 0.05  # forehead shinier than cheeks
    assert np.mean(lips_red) > 0.1  # lips redder than cheeks
    assert np.mean(brow_dark) < 0  # brows darker than the forehead on average


@pytest.mark.parametrize("sizes", [(64, 32), (128, 64)])
def test_resize(sizes):
    r = resize_reflectance(synthesize(sample_params(np.random.default_rng(2)), 128), *sizes)
    assert r.albedo.shape[-1] == sizes[0] and r.normal.shape[-1] == sizes[1]
    assert torch.allclose(r.normal.norm(dim=0), torch.ones(sizes[1], sizes[1]), atol=1e-5)
