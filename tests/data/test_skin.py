import numpy as np
import pytest

from facerefl.data.skin import (
    ita_category,
    ita_degrees,
    linear_rgb_to_lab,
    melanin_for_ita,
    skin_albedo,
)


def test_lab_of_white_and_black():
    np.testing.assert_allclose(linear_rgb_to_lab(np.ones(3)), [100, 0, 0], atol=1e-3)
    np.testing.assert_allclose(linear_rgb_to_lab(np.zeros(3)), [0, 0, 0], atol=1e-6)


def test_melanin_darkens_and_lowers_ita():
    m = np.linspace(0, 1.2, 13)
    a = skin_albedo(m, 0.25)
    assert np.all(np.diff(a.mean(-1)) < 0)
    assert np.all(np.diff(ita_degrees(a)) < 0)
    assert np.all((a > 0) & (a < 1))
    # skin is red > green > blue at every melanin level
    assert np.all(a[:, 0] > a[:, 1]) and np.all(a[:, 1] > a[:, 2])


def test_blood_reddens():
    pale, flushed = skin_albedo(0.2, 0.1), skin_albedo(0.2, 0.8)
    assert linear_rgb_to_lab(flushed)[1] > linear_rgb_to_lab(pale)[1] + 5


@pytest.mark.parametrize("ita", [70.0, 45.0, 30.0, 15.0, -10.0, -50.0])
def test_melanin_for_ita_inverts(ita):
    assert ita_degrees(skin_albedo(melanin_for_ita(ita), 0.25)) == pytest.approx(ita, abs=0.2)


def test_categories():
    assert [ita_category(x) for x in (60, 50, 30, 20, 0, -40)] == [
        "very light", "light", "intermediate", "tan", "brown", "dark"]
