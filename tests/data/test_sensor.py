import numpy as np

from facerefl.data.sensor import SensorSettings, add_noise, apply_sensor, jpeg_roundtrip


def _img():
    y, x = np.mgrid[0:64, 0:64] / 64.0
    return np.stack([x, y, 0.5 * (x + y)], -1).astype(np.float32) * 0.8


def test_sensor_deterministic_and_seed_dependent():
    s = SensorSettings()
    a = apply_sensor(_img(), np.random.default_rng(1), s)
    b = apply_sensor(_img(), np.random.default_rng(1), s)
    c = apply_sensor(_img(), np.random.default_rng(2), s)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.shape == (64, 64, 3) and a.min() >= 0 and a.max() <= 1


def test_noise_scales_with_signal():
    s = SensorSettings(photons=(500.0, 500.0), read_noise=(0.0, 0.0))
    rng = np.random.default_rng(0)
    dark = add_noise(np.full((64, 64, 3), 0.05, np.float32), rng, s) - 0.05
    bright = add_noise(np.full((64, 64, 3), 0.8, np.float32), rng, s) - 0.8
    assert bright.std() > 3 * dark.std()
    np.testing.assert_allclose(bright.std(), np.sqrt(0.8 / 500), rtol=0.1)


def test_jpeg_quality_controls_error():
    img = np.clip(_img() + np.random.default_rng(0).normal(0, 0.05, (64, 64, 3)), 0, 1)
    err = lambda q: np.abs(jpeg_roundtrip(img, q) - img).mean()  # noqa: E731
    assert err(95) < err(30)
