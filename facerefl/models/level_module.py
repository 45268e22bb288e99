"""LightningModule training the albedo-level regressor (beyond the paper; see
:mod:`facerefl.models.components.level`)."""

from __future__ import annotations

from typing import Callable

import pytorch_lightning as pl
import torch

from facerefl.models.components.level import AlbedoLevelRegressor, level_errors
from facerefl.models.optim import build_optimizer


class AlbedoLevelModule(pl.LightningModule):
    """MSE between the predicted and the true ``log`` skin level (``batch.albedo`` over
    T's valid skin). Textures are mirrored left-right at random: the level does not change."""

    def __init__(self, net: AlbedoLevelRegressor, optimizer: Callable, scheduler: Callable | None = None,
                 mirror: bool = True) -> None:
        super().__init__()
        self.save_hyperparameters(logger=False, ignore=["net", "optimizer", "scheduler"])
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.net, self.mirror = net, mirror

    def forward(self, texture: torch.Tensor) -> torch.Tensor:
        return self.net(texture)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        texture = batch.texture
        if self.mirror:
            flip = torch.rand(texture.shape[0], device=texture.device) < 0.5
            texture = torch.where(flip[:, None, None, None], texture.flip(-1), texture)
        loss = level_errors(self.net(texture), batch.albedo, batch.texture).square().mean()
        self.log("train/loss", loss, prog_bar=True, batch_size=batch.batch_size)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        err = level_errors(self.net(batch.texture), batch.albedo, batch.texture)
        bs = batch.batch_size
        self.log("val/loss", err.square().mean(), prog_bar=True, batch_size=bs, sync_dist=True)
        self.log("val/rms_log", err.square().mean().sqrt(), batch_size=bs, sync_dist=True)

    def configure_optimizers(self):
        return build_optimizer(self.optimizer_factory, self.scheduler_factory, self.net.parameters())

    def export_state(self) -> dict[str, torch.Tensor]:
        """Weights in :class:`~facerefl.models.components.level.AlbedoLevelRegressor` layout."""
        return dict(self.net.state_dict())
