"""Evaluate: ``python evaluate.py`` (Table 1, Figures 5 and 7 on the synthetic test set).

Thin Hydra entry point around :func:`facerefl.tasks.evaluate.evaluate`; see
``conf/evaluate.yaml`` for the modes (``photos=DIR``, ``gather=DIR``, ablation sweeps).
Folder settings are taken verbatim (see :mod:`facerefl.tasks.cli`). Exit status: 0 done;
2 bad input (one-line error on stderr); 130 / 143 interrupted. In a multirun a job that
fails on bad input is reported the same way and the sweep goes on (the gathered table
lists it as not run).
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from facerefl.resources import CONF_DIR
from facerefl.tasks.cli import EntrySpec, entry, run_job

CONF = CONF_DIR
SPEC = EntrySpec(CONF, "evaluate", path_keys=("photos", "gather", "output_dir", "weights", "testset"))


def _evaluate(cfg: DictConfig) -> int:
    from facerefl.tasks.evaluate import evaluate

    evaluate(cfg)
    return 0


# absolute, so that tests can import this script under any module name and call run()
@hydra.main(version_base="1.3", config_path=str(CONF), config_name="evaluate")
def main(cfg: DictConfig) -> None:
    run_job(cfg, _evaluate)


def run(argv: list[str] | None = None) -> int:
    """The command on ``argv`` (default: the process's arguments); returns the exit status."""
    return entry(main, SPEC, argv)


if __name__ == "__main__":
    sys.exit(run())
