"""Fit a portrait: ``python optimize.py photo.jpg`` or ``python optimize.py image=photo.jpg``
(or a folder of photos).

Thin Hydra entry point around :func:`facerefl.tasks.optimize.optimize`. Paths are taken
verbatim (any name the file system allows: ``"IMG (1).jpg"``, ``dollar${x}.png``), see
:mod:`facerefl.tasks.cli`. Exit status: 0 all photos fitted; 1 some photos in a folder
failed; 2 bad input (one ``error:`` line); 130 / 143 interrupted (SIGINT / SIGTERM).
"""

from __future__ import annotations

import os
import sys

# Idle OpenMP threads sleep instead of spinning: with torch's default of one thread per
# core, spinning workers fight any other load on a small CPU (measured on the 2-core CI
# machine under load: 860 ms per fitting iteration spinning, 295 ms passive). Must be
# set before torch is imported; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import hydra
from omegaconf import DictConfig

from facerefl.resources import CONF_DIR
from facerefl.tasks.cli import EntrySpec, entry, run_job

CONF = CONF_DIR
SPEC = EntrySpec(CONF, "optimize", path_keys=("image", "output_dir", "output_root", "weights"), positional="image")


# absolute, so that tests can import this script under any module name and call run()
@hydra.main(version_base="1.3", config_path=str(CONF), config_name="optimize")
def main(cfg: DictConfig) -> None:
    from facerefl.tasks.optimize import optimize_command

    run_job(cfg, optimize_command)


def run(argv: list[str] | None = None) -> int:
    """The command on ``argv`` (default: the process's arguments); returns the exit status."""
    return entry(main, SPEC, argv)


if __name__ == "__main__":
    sys.exit(run())
