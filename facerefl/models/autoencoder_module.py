"""LightningModule training one reflectance autoencoder E_* + D_* (section 7.2.1)."""

from __future__ import annotations

from typing import Callable

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from facerefl.models.components.autoencoder import ReflectanceAutoencoder, resize_reflectance
from facerefl.models.image_log import log_grids, make_grid, to_display
from facerefl.models.metrics import map_psnr
from facerefl.models.optim import build_optimizer


class ReflectanceAutoencoderModule(pl.LightningModule):
    """Supervised E/D training on :class:`~facerefl.data.types.ReflectanceBatch` tensors.

    The batch field named by ``net.kind`` is the target (resized to the decoder resolution).
    Loss: L1 on the map, plus ``(1 - cos)`` between normals for the normal branch.

    Args:
        net: the autoencoder, built by Hydra.
        optimizer: partial optimizer taking the parameters (``_partial_: true``).
        scheduler: optional partial LR scheduler taking the optimizer.
        freeze_decoder: train the encoder alone; the decoder keeps its weights and batch
            statistics (eval mode). For adapting a trained encoder to another input
            distribution (e.g. T unwrapped by the geometry stage, started with
            ``init_weights=``) while the decoder, and the enhancer trained on its output,
            stay valid.
    """

    def __init__(
        self,
        net: ReflectanceAutoencoder,
        optimizer: Callable,
        scheduler: Callable | None = None,
        log_images_every_n_epochs: int = 1,
        freeze_decoder: bool = False,
    ) -> None:
        super().__init__()
        # Optimizer factories stay out of the hyperparameters so checkpoints hold only plain
        # data and tensors (they load with torch.load(weights_only=True) on resume).
        self.save_hyperparameters(logger=False, ignore=["net", "optimizer", "scheduler"])
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.net = net
        self.kind = net.kind
        self.freeze_decoder = freeze_decoder
        if freeze_decoder:
            net.decoder.requires_grad_(False)

    def forward(self, texture: torch.Tensor) -> torch.Tensor:
        return self.net(texture)

    def _step(self, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        target = resize_reflectance(getattr(batch, self.kind), self.net.input_size, self.kind)
        pred = self.net(batch.texture)
        loss = F.l1_loss(pred, target)
        if self.kind == "normal":
            loss = loss + (1.0 - (pred * target).sum(1)).mean()
        return loss, pred, target

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        if self.freeze_decoder:  # here: Lightning sets the modes of every submodule itself
            self.net.decoder.eval()
        loss, _, _ = self._step(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch.batch_size)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        loss, pred, target = self._step(batch)
        bs = batch.batch_size
        self.log("val/loss", loss, prog_bar=True, batch_size=bs, sync_dist=True)
        self.log("val/psnr", map_psnr(pred, target, self.kind).mean(), batch_size=bs, sync_dist=True)
        if batch_idx == 0 and self._should_log_images():
            grid = make_grid(
                [to_display(batch.texture, "texture"), to_display(pred, self.kind),
                 to_display(target, self.kind)],
                size=pred.shape[-1],
            )
            log_grids(self.loggers, f"val/{self.kind}_grid", grid, self.global_step)

    def _should_log_images(self) -> bool:
        n = self.hparams.log_images_every_n_epochs
        return bool(n) and self.current_epoch % n == 0 and not self.trainer.sanity_checking

    def configure_optimizers(self):
        params = [q for q in self.net.parameters() if q.requires_grad]
        return build_optimizer(self.optimizer_factory, self.scheduler_factory, params)

    def export_state(self) -> dict[str, torch.Tensor]:
        """Weights in :class:`~facerefl.models.networks.ReflectanceBranch` layout."""
        return {f"autoencoder.{k}": v for k, v in self.net.state_dict().items()}
