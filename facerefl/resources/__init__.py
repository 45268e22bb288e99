"""Files shipped inside the package, and where they live.

Everything library code reads from the distribution itself comes from here, so it is found
in a checkout (editable install) and after ``pip install .`` alike. The configs and the SH
table are package data; the weights and the sample photo stay in the repository's
``data/`` folder and a wheel installs them under ``<prefix>/share/facerefl``:

* :data:`CONF_DIR` — the Hydra configs (``optimize.yaml``, ``evaluate.yaml``,
  ``train.yaml`` and their groups); :data:`PRESET_DIR` its network-size presets;
* :data:`CHECKPOINTS_DIR` — the trained weights, one folder per preset
  (``cpu/``, ``cpu_noskip/``: safetensors, ``config.json``, model card);
* :data:`SH_LIGHTS` — the order-2 SH table of the lighting prior;
* :data:`SAMPLES_DIR` — the sample photo(s) of ``make demo``.

Pinned third-party assets fetched at set-up are :mod:`facerefl.assets`'s business, not
this module's. The folders are real directories: the package must be installed unzipped
(pip always does).
"""

from __future__ import annotations

import sys
from importlib.resources import files
from pathlib import Path

from facerefl.errors import InputError

__all__ = ["CHECKPOINTS_DIR", "CONF_DIR", "PRESET_DIR", "SAMPLES_DIR", "SH_LIGHTS", "source_checkout"]


def _directory(package: str) -> Path:
    path = Path(str(files(package)))
    if not path.is_dir():
        raise RuntimeError(f"package {package} is not a folder on disk ({path}); install facerefl unzipped")
    return path


_PACKAGE = _directory("facerefl")
_HERE = _directory(__name__)

CONF_DIR = _PACKAGE / "conf"
PRESET_DIR = CONF_DIR / "preset"

def _shipped_data() -> Path:
    """``data/`` of the source checkout (editable install), else ``<prefix>/share/facerefl``
    where the wheel installs the same files (``[tool.setuptools.data-files]``)."""
    checkout = _PACKAGE.parent / "data"
    if (checkout / "checkpoints").is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "facerefl"


_DATA = _shipped_data()
CHECKPOINTS_DIR = _DATA / "checkpoints"
SH_LIGHTS = _HERE / "sh_lights.json"
SAMPLES_DIR = _DATA / "samples"


def source_checkout() -> Path:
    """The repository folder that holds this package, for tools that need the sources
    (git history, training outputs); raises :class:`InputError` for an installed copy."""
    root = _PACKAGE.parent
    if not (root / "pyproject.toml").is_file():
        raise InputError(f"facerefl at {_PACKAGE} is an installed copy, not a source checkout; "
                         "clone the repository and run this from there (`make setup`)")
    return root
