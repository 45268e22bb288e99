"""Evaluate: ``python evaluate.py`` (Table 1, Figures 5 and 7 on the synthetic test set).

Thin Hydra entry point around :func:`facerefl.tasks.evaluate.evaluate`; see
``conf/evaluate.yaml`` for the modes (``photos=DIR``, ``gather=DIR``, ablation sweeps).
Exit status: 0 done; 2 bad input (one-line error on stderr). In a multirun a job that
fails this way is reported the same way and the sweep goes on (the gathered table lists
it as not run).
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    from facerefl.assets import AssetMissingError
    from facerefl.errors import InputError
    from facerefl.tasks.evaluate import evaluate

    try:
        evaluate(cfg)
    except (InputError, AssetMissingError) as e:
        print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
        if not _in_multirun():
            sys.exit(2)


def _in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


if __name__ == "__main__":
    main()
