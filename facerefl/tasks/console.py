"""Console scripts of an installed facerefl (``[project.scripts]`` in ``pyproject.toml``).

``facerefl-optimize photo.jpg [key=value ...]`` is ``python optimize.py`` of a checkout:
the same command line (:mod:`facerefl.tasks.cli`), the same exit statuses, the configs
shipped in the package (:data:`facerefl.resources.CONF_DIR`), so it runs from any folder.
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning (see optimize.py); set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from facerefl.resources import CONF_DIR  # noqa: E402
from facerefl.tasks.cli import EntrySpec, entry, run_job  # noqa: E402

OPTIMIZE = EntrySpec(CONF_DIR, "optimize", path_keys=("image", "output_dir", "output_root", "weights"), positional="image")


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="optimize")
def _optimize_job(cfg: DictConfig) -> None:
    # torch loads only once the command line is known good (fast errors and --help)
    from facerefl.tasks.optimize import optimize_command

    run_job(cfg, optimize_command)


def optimize() -> int:
    """``facerefl-optimize``: fit the photo(s) on the command line; returns the exit status."""
    return entry(_optimize_job, OPTIMIZE)
