"""``train(cfg)``: build datamodule, LightningModule, callbacks, loggers and trainer from a
composed Hydra config (``conf/train.yaml``), fit, export the weights, return the metrics.

Entry point: ``python train.py experiment=<name> [overrides]`` (the root script is thin).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from hydra.errors import InstantiationException
from omegaconf import DictConfig

from facerefl.assets import AssetMissingError
from facerefl.errors import InputError
from facerefl.models.averaging import WeightAverage
from facerefl.models.serialization import save_state_atomic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` built and measured.

    metrics: last logged scalar metrics (``train/*``, ``val/*``) as floats.
    export_path: where the trained weights were written (None when not exported).
    """

    metrics: dict[str, float]
    model: pl.LightningModule
    trainer: pl.Trainer
    datamodule: pl.LightningDataModule
    export_path: Path | None


def build(node: DictConfig, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` that lets user errors (bad paths, missing assets) through
    unwrapped, so entry points can report them in one line."""
    try:
        return hydra.utils.instantiate(node, **kwargs)
    except InstantiationException as e:
        if isinstance(e.__cause__, (InputError, AssetMissingError)):
            raise e.__cause__ from None
        raise


def instantiate_group(cfg: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` entry of a callbacks/logger group (``None`` → [])."""
    if not cfg:
        return []
    if not isinstance(cfg, DictConfig):
        raise InputError(f"expected a config group mapping, got {type(cfg).__name__}")
    return [build(c) for c in cfg.values() if isinstance(c, DictConfig) and "_target_" in c]


def init_from_export(model: pl.LightningModule, path: Path | str) -> int:
    """Start ``model`` from exported weights: the safetensors file ``path`` in the layout of
    ``model.export_state()`` (a stage export, or a shipped branch file such as
    ``albedo.safetensors``, whose other entries are ignored). Fine-tuning a stage on new
    data starts here. Loaded with safetensors (no pickle). Returns the tensors copied.

    Raises:
        InputError: the file is missing or lacks a tensor the model needs, or a shape differs.
    """
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise InputError(f"init_weights: no file {path}")
    state = load_file(str(path))
    # export_state's tensors share storage with the live parameters and buffers
    mine = model.export_state()
    missing = [k for k in mine if k not in state]
    if missing:
        raise InputError(f"init_weights: {path} lacks {len(missing)} of the model's tensors "
                         f"(e.g. {missing[0]}); is it this stage's export?")
    with torch.no_grad():
        for k, v in mine.items():
            if state[k].shape != v.shape:
                raise InputError(f"init_weights: {k} is {tuple(state[k].shape)} in {path}, "
                                 f"the model has {tuple(v.shape)} (another preset?)")
            v.copy_(state[k])
    return len(mine)


def train(cfg: DictConfig) -> TrainResult:
    """Fit the configured model; export its weights to ``cfg.export_path`` (rank 0)."""
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    if cfg.get("torch_threads"):
        # On a shared CPU, fewer intra-op threads than cores avoids oversubscription stalls.
        torch.set_num_threads(int(cfg.torch_threads))
    datamodule: pl.LightningDataModule = build(cfg.data)
    model: pl.LightningModule = build(cfg.model)
    trainer: pl.Trainer = build(
        cfg.trainer,
        callbacks=instantiate_group(cfg.get("callbacks")),
        logger=instantiate_group(cfg.get("logger")) or False,
    )
    if cfg.get("init_weights"):
        n = init_from_export(model, cfg.init_weights)
        log.info("started from %d tensors of %s", n, cfg.init_weights)
    if cfg.train:
        log.info("training %s (%s preset)", cfg.get("run_name"), cfg.get("preset"))
        trainer.fit(model=model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        if any(isinstance(c, WeightAverage) and c.count for c in trainer.callbacks):
            # the weights are now the average: validate what will be exported
            trainer.validate(model=model, datamodule=datamodule, verbose=False)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if torch.is_tensor(v) and v.numel() == 1}
    export = cfg.get("export_path")
    out = Path(export) if export else None
    if out is not None and trainer.is_global_zero:
        save_state_atomic(model.export_state(), out)
        log.info("exported weights to %s", out)
    return TrainResult(metrics, model, trainer, datamodule, out)
