"""Network sizes of the Hydra presets (``facerefl/conf/preset/<name>.yaml``) as a :class:`NetworksConfig`."""

from __future__ import annotations

from omegaconf import OmegaConf

from facerefl.errors import InputError
from facerefl.models.networks import NetworksConfig
from facerefl.resources import PRESET_DIR


def preset_sizes(name: str) -> NetworksConfig:
    """Read the ``sizes`` node of preset ``name`` ("cpu" | "paper")."""
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))
        raise InputError(f"unknown preset {name!r}; known: {known}")
    return NetworksConfig.from_dict(OmegaConf.to_container(OmegaConf.load(path).sizes, resolve=True))
