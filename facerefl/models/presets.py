"""Network sizes of the Hydra presets (``conf/preset/<name>.yaml``) as a :class:`NetworksConfig`."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from facerefl.errors import InputError
from facerefl.models.networks import NetworksConfig

PRESET_DIR = Path(__file__).resolve().parents[2] / "conf" / "preset"


def preset_sizes(name: str) -> NetworksConfig:
    """Read the ``sizes`` node of preset ``name`` ("cpu" | "paper")."""
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))
        raise InputError(f"unknown preset {name!r}; known: {known}")
    return NetworksConfig.from_dict(OmegaConf.to_container(OmegaConf.load(path).sizes, resolve=True))
