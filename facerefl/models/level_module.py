"""LightningModule training the albedo-level regressor (beyond the paper; see
:mod:`facerefl.models.components.level`)."""

from __future__ import annotations

from typing import Callable

import pytorch_lightning as pl
import torch

from facerefl.models.components.level import AlbedoLevelRegressor, level_errors
from facerefl.models.components.light import flip_u_at_random
from facerefl.models.optim import build_optimizer
from facerefl.render.color import scale_exposure


class AlbedoLevelModule(pl.LightningModule):
    """MSE between the predicted and the true ``log`` skin level (``batch.albedo`` over
    T's valid skin). Textures are mirrored left-right at random: the level does not change.

    With ``exposure`` ``(lo, hi)``, each example's light is also scaled by ``exp(u)``, u
    uniform in [lo, hi] (:func:`~facerefl.render.color.scale_exposure` on T's RGB): a dimmer
    or brighter photo of the same face has the same level.

    With ``white_balance`` w, each colour channel's light is further scaled by ``exp(u)``,
    u uniform in [−w, w] per channel: the light's colour changes, the level does not.

    ``target="specular"`` trains the same body for the specular map's level instead (the
    mean specular intensity over the skin; the net needs ``channels=1``).
    """

    def __init__(self, net: AlbedoLevelRegressor, optimizer: Callable, scheduler: Callable | None = None,
                 mirror: bool = True, exposure: tuple[float, float] | None = None,
                 target: str = "albedo", white_balance: float | None = None) -> None:
        super().__init__()
        # exposure arrives from Hydra as a ListConfig, which a weights_only resume cannot load
        self.save_hyperparameters(logger=False, ignore=["net", "optimizer", "scheduler", "exposure"])
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        if target not in ("albedo", "specular"):
            raise ValueError(f"target must be 'albedo' or 'specular', not {target!r}")
        self.net, self.mirror, self.target = net, mirror, target
        self.exposure = None if exposure is None else (float(exposure[0]), float(exposure[1]))
        self.white_balance = None if not white_balance else float(white_balance)

    def forward(self, texture: torch.Tensor) -> torch.Tensor:
        return self.net(texture)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        texture = batch.texture
        if self.mirror:
            texture, _ = flip_u_at_random(texture)
        texture = self.relight(texture)
        loss = level_errors(self.net(texture), getattr(batch, self.target), batch.texture).square().mean()
        self.log("train/loss", loss, prog_bar=True, batch_size=batch.batch_size)
        return loss

    def relight(self, texture: torch.Tensor) -> torch.Tensor:
        """T ``[B, 4, H, W]`` with its RGB re-exposed by the random gains of ``exposure`` and
        ``white_balance`` (unchanged when both are off)."""
        b = texture.shape[0]
        log_gain = torch.zeros(b, 1, 1, 1, device=texture.device, dtype=texture.dtype)
        if self.exposure is not None:
            lo, hi = self.exposure
            log_gain = log_gain + lo + (hi - lo) * torch.rand_like(log_gain)
        if self.white_balance is not None:
            w = self.white_balance
            log_gain = log_gain + w * (2 * torch.rand(b, 3, 1, 1, device=texture.device, dtype=texture.dtype) - 1)
        if self.exposure is None and self.white_balance is None:
            return texture
        rgb = scale_exposure(texture[:, :3], log_gain.exp())
        return torch.cat([rgb, texture[:, 3:]], dim=1)

    def validation_step(self, batch, batch_idx: int) -> None:
        err = level_errors(self.net(batch.texture), getattr(batch, self.target), batch.texture)
        bs = batch.batch_size
        self.log("val/loss", err.square().mean(), prog_bar=True, batch_size=bs, sync_dist=True)
        self.log("val/rms_log", err.square().mean().sqrt(), batch_size=bs, sync_dist=True)

    def configure_optimizers(self):
        return build_optimizer(self.optimizer_factory, self.scheduler_factory, self.net.parameters())

    def export_state(self) -> dict[str, torch.Tensor]:
        """Weights in :class:`~facerefl.models.components.level.AlbedoLevelRegressor` layout."""
        return dict(self.net.state_dict())
