"""LightningModule training the SH light regressor (section 5.2)."""

from __future__ import annotations

from typing import Callable

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from facerefl.models.components.light import SHRegressor, flip_u_at_random
from facerefl.models.metrics import light_psnr
from facerefl.models.optim import build_optimizer
from facerefl.render.sh import sh_mirror_x


class LightRegressorModule(pl.LightningModule):
    """MSE on the 27 SH coefficients of ``batch.light`` ``[B, 3, 9]`` (linear radiance).

    With ``mirror``, each example is flipped along u at random together with its lighting
    (:func:`~facerefl.render.sh.sh_mirror_x`): the template's UV layout is symmetric about
    u = 0.5, so the flipped texture is the left-right mirrored scene.
    """

    def __init__(self, net: SHRegressor, optimizer: Callable, scheduler: Callable | None = None,
                 mirror: bool = False) -> None:
        super().__init__()
        # Optimizer factories stay out of the hyperparameters so checkpoints hold only plain
        # data and tensors (they load with torch.load(weights_only=True) on resume).
        self.save_hyperparameters(logger=False, ignore=["net", "optimizer", "scheduler"])
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.net, self.mirror = net, mirror

    def forward(self, texture: torch.Tensor) -> torch.Tensor:
        return self.net(texture)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        texture, light = batch.texture, batch.light
        if self.mirror:
            texture, flip = flip_u_at_random(texture)
            light = torch.where(flip[:, None, None], sh_mirror_x(light), light)
        loss = F.mse_loss(self.net(texture), light)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch.batch_size)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        pred = self.net(batch.texture)
        bs = batch.batch_size
        self.log("val/loss", F.mse_loss(pred, batch.light), prog_bar=True, batch_size=bs, sync_dist=True)
        self.log("val/psnr", light_psnr(pred, batch.light).mean(), batch_size=bs, sync_dist=True)

    def configure_optimizers(self):
        return build_optimizer(self.optimizer_factory, self.scheduler_factory, self.net.parameters())

    def export_state(self) -> dict[str, torch.Tensor]:
        """Weights in :class:`~facerefl.models.components.light.SHRegressor` layout."""
        return dict(self.net.state_dict())
