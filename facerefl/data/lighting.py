"""Lighting prior: SH projections of real HDR maps, augmented by rotation, intensity and WB.

The table of SH coefficients (``facerefl/resources/sh_lights.json``, committed) holds the order-2
incident-radiance projection ``[3, 9]`` of each cached HDR map (:mod:`facerefl.data.hdri`),
in the camera frame with the map's default orientation. Regenerate it (after
``make setup``) with::

    python -m facerefl.data.lighting --out facerefl/resources/sh_lights.json

A :class:`LightSample` is one augmented environment: map ``name`` rotated by ``rotation``
(what came from direction d now comes from ``rotation @ d``) and multiplied per channel by
``gain``. Its SH is exactly ``gain * sh_rotate(table[name], rotation)``, which equals the
SH projection of the augmented map itself, so the Monte Carlo renderer (which uses the
map) and the SH ground truth describe the same light.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facerefl.data.hdri import (
    direction_to_pixel, equirect_directions, equirect_solid_angles, load_map, map_names,
)
from facerefl.errors import InputError
from facerefl.fsutil import atomic_write_text
from facerefl.render.sh import project_to_sh, sh_basis, sh_rotate
from facerefl.resources import SH_LIGHTS

#: Committed SH table, shipped in the package (see :mod:`facerefl.resources`).
DEFAULT_TABLE = SH_LIGHTS

#: Mean incident radiance (Y00 term, luminance) the prior normalizes every map to, before
#: the random intensity; chosen so that albedo 0.5 skin under it renders at mid-grey.
TARGET_MEAN_RADIANCE = 0.9
_LUMA = np.array([0.2126, 0.7152, 0.0722])


@dataclass(frozen=True)
class LightSettings:
    """Ranges of the lighting augmentation.

    Attributes:
        max_tilt_deg: the environment is turned freely about the vertical (+y) axis and
            tilted about x and z by at most this angle.
        intensity: ``(lo, hi)`` of the log-uniform exposure multiplier.
        wb_sigma: std-dev of the log per-channel white-balance gain (luminance kept).
        awb: ``(lo, hi)`` of the uniform strength of the camera's auto white balance, which
            divides out that fraction (in log space) of the map's mean colour cast.
    """

    max_tilt_deg: float = 20.0
    intensity: tuple[float, float] = (0.6, 1.6)
    wb_sigma: float = 0.08
    awb: tuple[float, float] = (0.5, 1.0)


@dataclass(frozen=True)
class LightSample:
    """One augmented HDR environment.

    Attributes:
        name: HDR map name (see :func:`facerefl.data.hdri.map_names`).
        rotation: ``[3, 3]`` float64 rotation, camera frame.
        gain: ``[3]`` float64 linear RGB multiplier (normalisation x intensity x WB).
        sh: ``[3, 9]`` float32 incident-radiance SH of the augmented map, camera frame.
    """

    name: str
    rotation: np.ndarray
    gain: np.ndarray
    sh: torch.Tensor


def load_table(path: Path | None = None) -> dict[str, np.ndarray]:
    """Read an SH table: map name -> ``[3, 9]`` float64 coefficients."""
    path = Path(path) if path is not None else DEFAULT_TABLE
    if not path.exists():
        raise InputError(
            f"SH light table {path} not found; regenerate it with "
            "`python -m facerefl.data.lighting --out facerefl/resources/sh_lights.json`"
        )
    data = json.loads(path.read_text(encoding="utf-8"))
    return {name: np.asarray(c, dtype=np.float64).reshape(3, 9) for name, c in data["sh"].items()}


def project_equirect(rgb: np.ndarray) -> np.ndarray:
    """Order-2 SH ``[3, 9]`` (float64) of an equirect map ``[H, W, 3]`` (hdri convention)."""
    h, w, _ = rgb.shape
    d = equirect_directions(h, w, torch.float64).reshape(-1, 3)
    wt = equirect_solid_angles(h, w, torch.float64).reshape(-1)
    vals = torch.as_tensor(rgb, dtype=torch.float64).reshape(-1, 3)
    return project_to_sh(d, vals, wt).numpy()


def rotation_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """``R = Ry(yaw) @ Rx(pitch) @ Rz(roll)`` (radians, camera frame), float64 ``[3, 3]``."""
    cy, sy, cp, sp, cr, sr = (math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch),
                              math.cos(roll), math.sin(roll))
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return ry @ rx @ rz


class LightPrior:
    """Samples augmented real-world SH lighting.

    Args:
        table: map name -> raw ``[3, 9]`` SH (from :func:`load_table`).
        settings: augmentation ranges.
        names: restrict to these maps (e.g. a held-out split); default all.
    """

    def __init__(
        self,
        table: dict[str, np.ndarray],
        settings: LightSettings = LightSettings(),
        names: list[str] | None = None,
    ) -> None:
        names = sorted(table) if names is None else list(names)
        missing = [n for n in names if n not in table]
        if missing or not names:
            raise InputError(f"unknown or no HDR maps {missing}; table has {sorted(table)}")
        self.table = table
        self.names = names
        self.settings = settings

    def normalisation(self, name: str) -> float:
        """Scalar that brings map ``name``'s mean radiance to :data:`TARGET_MEAN_RADIANCE`."""
        mean = float(_LUMA @ self.table[name][:, 0]) * 0.5 / math.sqrt(math.pi)
        return TARGET_MEAN_RADIANCE / max(mean, 1e-6)

    def sample(self, rng: np.random.Generator, name: str | None = None) -> LightSample:
        """Draw one environment (deterministic given ``rng``'s state)."""
        s = self.settings
        name = self.names[int(rng.integers(len(self.names)))] if name is None else name
        tilt = math.radians(s.max_tilt_deg)
        rot = rotation_matrix(rng.uniform(-math.pi, math.pi), rng.uniform(-tilt, tilt),
                              rng.uniform(-tilt, tilt))
        lo, hi = s.intensity
        intensity = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        cast = self.table[name][:, 0] / float(_LUMA @ self.table[name][:, 0])
        wb = np.exp(rng.normal(0.0, s.wb_sigma, size=3)) * cast ** (-rng.uniform(*s.awb))
        wb = wb / float(_LUMA @ (wb * cast))
        gain = self.normalisation(name) * intensity * wb
        return LightSample(name, rot, gain, self.sh_of(name, rot, gain))

    def sh_of(self, name: str, rotation: np.ndarray, gain: np.ndarray) -> torch.Tensor:
        """SH ``[3, 9]`` float32 of map ``name`` rotated by ``rotation`` and scaled by ``gain``."""
        c = torch.as_tensor(self.table[name], dtype=torch.float64)
        rotated = sh_rotate(c, torch.as_tensor(rotation, dtype=torch.float64))
        return (rotated * torch.as_tensor(gain, dtype=torch.float64)[:, None]).float()


def sh_radiance(sh: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """Radiance ``[..., 3]`` of SH lighting ``[3, 9]`` in unit directions ``[..., 3]``."""
    return sh_basis(dirs.to(sh.dtype)) @ sh.transpose(0, 1)


def write_table(out: Path) -> dict[str, list[float]]:
    """Project every cached HDR map and write the table atomically to ``out``."""
    table = {n: project_equirect(load_map(n)).reshape(-1).round(7).tolist() for n in map_names()}
    doc = {
        "about": "order-2 incident-radiance SH [3, 9] (colour-major) of each @pmndrs/assets@1.7.0 "
                 "HDR map, camera frame; regenerate: python -m facerefl.data.lighting --out "
                 "facerefl/resources/sh_lights.json",
        "sh": table,
    }
    atomic_write_text(out, json.dumps(doc, indent=1), make_parents=True)
    return table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m facerefl.data.lighting",
                                description="Write the SH table of the cached HDR maps.")
    p.add_argument("--out", type=Path, default=DEFAULT_TABLE, help="output JSON path")
    args = p.parse_args(argv)
    try:
        table = write_table(args.out)
    except (InputError, OSError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {len(table)} maps to {args.out}")
    return 0



def environment_radiance(light: LightSample, dirs: torch.Tensor, small: bool = True,
                         bilinear: bool = False) -> torch.Tensor:
    """Radiance ``[..., 3]`` of the augmented HDR map of ``light`` towards unit ``dirs [..., 3]``.

    Lookup in the cached equirect map (``small``: the 256 x 128 copy; nearest texel, or
    bilinear), with the sample's rotation and gain applied; camera frame, linear RGB,
    float64.
    """
    env = cached_map(light.name, small)
    back = dirs.double() @ torch.as_tensor(light.rotation)  # rotation^T d, row vectors
    gain = torch.as_tensor(light.gain)
    if not bilinear:
        row, col = direction_to_pixel(back, env.shape[0], env.shape[1])
        return env[row, col].double() * gain
    theta = torch.acos(back[..., 1].clamp(-1.0, 1.0))
    phi = torch.atan2(back[..., 0], -back[..., 2])
    grid = torch.stack([phi / torch.pi, theta / torch.pi * 2 - 1], dim=-1).float()
    flat = grid.reshape(1, 1, -1, 2)
    out = torch.nn.functional.grid_sample(env.permute(2, 0, 1)[None], flat, mode="bilinear",
                                          padding_mode="border", align_corners=False)
    return out[0, :, 0].T.reshape(*dirs.shape[:-1], 3).double() * gain


@functools.lru_cache(maxsize=40)
def cached_map(name: str, small: bool) -> torch.Tensor:
    """Cached HDR map ``name`` as a float32 ``[H, W, 3]`` tensor (memoised; do not mutate)."""
    return torch.from_numpy(load_map(name, small=small))


if __name__ == "__main__":
    sys.exit(main())
