
import numpy as np
import pytest
import torch

from facerefl.data.hdri import equirect_directions
from facerefl.data.lighting import (
    LightPrior,
    LightSettings,
    load_table,
    project_equirect,
    rotation_matrix,
    sh_radiance,
)
from facerefl.errors import InputError


def _smooth_map(h=64, w=128):
    d = equirect_directions(h, w, torch.float64).numpy()
    # a smooth, asymmetric, coloured environment (band-limited well below the grid)
    base = 1.0 + 0.6 * d[..., 1] + 0.3 * d[..., 0] * d[..., 2] + 0.2 * d[..., 0]
    return np.stack([base, 0.8 * base + 0.1 * d[..., 2], 0.6 * base], axis=-1)


def test_projection_recovers_band_limited_function():
    rgb = _smooth_map()
    sh = project_equirect(rgb)
    d = equirect_directions(64, 128, torch.float64)
    recon = sh_radiance(torch.as_tensor(sh), d).numpy()
    np.testing.assert_allclose(recon, rgb, atol=2e-3)


def test_augmented_sh_equals_projection_of_augmented_map():
    rgb = _smooth_map()
    prior = LightPrior({"m": project_equirect(rgb)}, LightSettings(max_tilt_deg=30))
    s = prior.sample(np.random.default_rng(3))
    h, w = rgb.shape[:2]
    d = equirect_directions(h, w, torch.float64)
    back = d @ torch.as_tensor(s.rotation)  # rotation^T d for row vectors
    # bilinear-free lookup is too coarse; evaluate the (exact) smooth function instead
    x, y, z = back.unbind(-1)
    base = 1.0 + 0.6 * y + 0.3 * x * z + 0.2 * x
    aug = torch.stack([base, 0.8 * base + 0.1 * z, 0.6 * base], -1).numpy() * s.gain
    np.testing.assert_allclose(s.sh.double().numpy(), project_equirect(aug), rtol=1e-3, atol=2e-3)


def test_sampling_is_deterministic_and_varied():
    prior = LightPrior({"a": project_equirect(_smooth_map()), "b": 2 * project_equirect(_smooth_map())})
    a = prior.sample(np.random.default_rng(7))
    b = prior.sample(np.random.default_rng(7))
    c = prior.sample(np.random.default_rng(8))
    assert torch.equal(a.sh, b.sh) and a.name == b.name
    assert not torch.equal(a.sh, c.sh)


def test_rotation_matrix_is_rotation():
    r = rotation_matrix(0.3, -0.2, 1.1)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)


def test_unknown_map_raises():
    with pytest.raises(InputError, match="unknown"):
        LightPrior({"a": np.zeros((3, 9))}, names=["zzz"])


def test_committed_table_matches_cached_maps():
    from facerefl.assets import is_ready

    if not is_ready("hdri"):
        pytest.skip("hdri asset not fetched (run `make setup`)")
    from facerefl.data.hdri import load_map, map_names

    table = load_table()
    assert sorted(table) == sorted(map_names()) and len(table) == 18
    for name in ("studio", "sky"):
        np.testing.assert_allclose(table[name], project_equirect(load_map(name)), rtol=1e-5, atol=1e-5)
    # every map is brighter from above than from below (sky / ceiling lights): Y1-1 > 0
    assert sum(table[n][:, 1].mean() > 0 for n in table) >= 15
