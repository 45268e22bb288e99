"""Train one facerefl network: ``python train.py experiment=<name> [overrides]``.

Experiments: albedo_ae, specular_ae, normal_ae, albedo_enh, specular_enh, normal_enh,
light (and the albedo_ae_noskip ablation); `make train` runs them all in order.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from facerefl.assets import AssetMissingError
from facerefl.errors import InputError
from facerefl.resources import CONF_DIR


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    from facerefl.tasks.train import train

    try:
        result = train(cfg)
    except (InputError, AssetMissingError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    return result.metrics.get("val/psnr")


if __name__ == "__main__":
    main()
