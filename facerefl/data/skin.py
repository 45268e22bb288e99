"""A two-chromophore skin colour model and the ITA skin-tone measure.

Skin albedo comes from a double-pass Beer-Lambert model evaluated at three effective
wavelengths (R ~ 610 nm, G ~ 550 nm, B ~ 465 nm):

    albedo_c = s + (r0_c - s) * exp(-2 m k_mel,c) * exp(-h k_hem,c)

with ``m`` the epidermal melanin optical depth (0 = none, ~1 = very dark skin), ``h`` the
dermal blood (haemoglobin) depth, ``k_mel`` following melanin's steep fall-off with
wavelength (about lambda^-3.5, flattened for the broad RGB bands), ``k_hem`` the green-heavy
absorption of oxy-haemoglobin, ``r0`` the bloodless, melanin-free dermis and ``s`` the
surface scattering that never meets a chromophore. Outputs are linear RGB in [0, 1].

The Individual Typology Angle is ``ITA = atan((L* - 50) / b*)`` in degrees, computed from
CIELAB (D65) of the linear-sRGB albedo. Categories (Chardon et al.): very light > 55,
light 41-55, intermediate 28-41, tan 10-28, brown -30-10, dark < -30.
"""

from __future__ import annotations

import numpy as np

#: Relative melanin absorption per channel (R, G, B).
K_MELANIN = np.array([1.0, 1.45, 2.0])
#: Relative haemoglobin absorption per channel (R, G, B).
K_HEMOGLOBIN = np.array([0.04, 1.0, 0.45])
#: Bloodless, melanin-free dermis reflectance (linear RGB).
R0_DERMIS = np.array([0.80, 0.66, 0.52])
#: Unabsorbed surface scattering.
SURFACE = 0.025

#: ITA category names and lower bounds in degrees, lightest first.
ITA_CATEGORIES: tuple[tuple[str, float], ...] = (
    ("very light", 55.0),
    ("light", 41.0),
    ("intermediate", 28.0),
    ("tan", 10.0),
    ("brown", -30.0),
    ("dark", -np.inf),
)

_RGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
_WHITE = _RGB_TO_XYZ.sum(axis=1)


def skin_albedo(melanin: np.ndarray | float, blood: np.ndarray | float) -> np.ndarray:
    """Linear RGB skin albedo in [0, 1] for melanin depth ``melanin`` and blood ``blood``.

    Args:
        melanin: ``[...]`` epidermal melanin optical depth, >= 0 (0.05 very light .. 1 dark).
        blood: ``[...]`` dermal haemoglobin depth, >= 0 (0.1 pale .. 0.6 flushed; lips ~1).

    Returns:
        ``[..., 3]`` float64 linear RGB.

    >>> skin_albedo(0.1, 0.2).round(2).tolist()
    [0.65, 0.41, 0.33]
    """
    m = np.asarray(melanin, dtype=np.float64)[..., None]
    h = np.asarray(blood, dtype=np.float64)[..., None]
    att = np.exp(-2.0 * m * K_MELANIN) * np.exp(-h * K_HEMOGLOBIN)
    return SURFACE + (R0_DERMIS - SURFACE) * att


def linear_rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of linear-sRGB colours ``[..., 3]`` -> ``[..., 3]`` (L*, a*, b*)."""
    xyz = np.asarray(rgb, dtype=np.float64) @ _RGB_TO_XYZ.T / _WHITE
    eps = (6.0 / 29.0) ** 3
    f = np.where(xyz > eps, np.cbrt(np.maximum(xyz, eps)), xyz / (3 * (6.0 / 29.0) ** 2) + 4.0 / 29.0)
    return np.stack(
        [116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])],
        axis=-1,
    )


def ita_degrees(rgb: np.ndarray) -> np.ndarray:
    """Individual Typology Angle (degrees) of linear-sRGB colours ``[..., 3]`` -> ``[...]``."""
    lab = linear_rgb_to_lab(rgb)
    return np.degrees(np.arctan2(lab[..., 0] - 50.0, lab[..., 2]))


def ita_category(ita: float) -> str:
    """Name of the ITA category holding angle ``ita`` (degrees)."""
    for name, lower in ITA_CATEGORIES:
        if ita > lower:
            return name
    return ITA_CATEGORIES[-1][0]


#: Tabulated ITA(melanin) at the reference blood depth, for :func:`melanin_for_ita`.
_REF_BLOOD = 0.25
_M_GRID = np.linspace(0.0, 2.0, 401)
_ITA_GRID = ita_degrees(skin_albedo(_M_GRID, _REF_BLOOD))


def melanin_for_ita(ita: np.ndarray | float) -> np.ndarray:
    """Melanin depth whose skin (at reference blood 0.25) has ITA ``ita`` degrees.

    ITA falls monotonically with melanin, so sampling a target ITA and inverting gives an
    even spread over the skin-tone categories (used by the reflectance sampler).
    Valid for ITA in about [-80, 80].
    """
    # _ITA_GRID is decreasing; np.interp needs increasing x.
    return np.interp(np.asarray(ita, dtype=np.float64), _ITA_GRID[::-1], _M_GRID[::-1])
