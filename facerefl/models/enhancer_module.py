"""LightningModule training a detail enhancer R_* as a GAN (section 5.1.3, 7.2.2).

The generator's input is the output of the (frozen, already trained) decoder D_*, never a
downsampled target (figure 3b); the target is the ground-truth map at the enhancer's output
resolution. Losses follow SRGAN: pixel MSE + VGG perceptual (albedo only, on the
sRGB-encoded albedo) + adversarial (BCE), with manual optimization of G and D.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from facerefl.errors import InputError
from facerefl.models.components.autoencoder import ReflectanceAutoencoder, resize_reflectance
from facerefl.models.components.enhancer import DetailEnhancer, Discriminator
from facerefl.models.components.perceptual import VGGPerceptualLoss, load_vgg16
from facerefl.models.image_log import log_grids, make_grid, to_display
from facerefl.models.metrics import detail_energy_ratio, detail_psnr, map_psnr
from facerefl.render.color import linear_to_srgb


def load_autoencoder_weights(net: ReflectanceAutoencoder, path: str | Path) -> None:
    """Load E/D weights exported by the autoencoder stage (``autoencoder.*`` keys)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"autoencoder weights {path} not found; train the autoencoder experiment first "
            "(it writes them via export_path) or set model.autoencoder_weights=null"
        )
    state = load_file(str(path))
    prefix = "autoencoder."
    net.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})


class DetailEnhancerModule(pl.LightningModule):
    """SRGAN training of ``generator`` on decoder outputs.

    Args:
        autoencoder: E_*/D_* of the same kind (frozen, eval-mode batch norm).
        generator: R_*; discriminator: its critic.
        optimizer_g, optimizer_d: partial optimizers.
        autoencoder_weights: safetensors from the autoencoder stage (None: keep the
            autoencoder's initial weights, only for smoke tests).
        pixel_weight, perceptual_weight, adversarial_weight: loss weights (the perceptual
            term is used for albedo only).
        adversarial_start_step: generator-only (pixel + perceptual) warm-up steps before the
            GAN terms switch on, as SRGAN initializes from SRResNet.
        perceptual_taps: VGG16 taps used (1-5: conv1_2 … conv5_3).
        perceptual_crop: side of one random square crop (same place in prediction and
            target) the VGG term sees per batch; None uses the whole map. Bounds its cost.
    """

    def __init__(
        self,
        autoencoder: ReflectanceAutoencoder,
        generator: DetailEnhancer,
        discriminator: Discriminator,
        optimizer_g: Callable,
        optimizer_d: Callable,
        autoencoder_weights: str | None = None,
        pixel_weight: float = 1.0,
        perceptual_weight: float = 0.006,
        adversarial_weight: float = 1e-3,
        adversarial_start_step: int = 0,
        perceptual_taps: int = 3,
        perceptual_crop: int | None = None,
        log_images_every_n_epochs: int = 1,
    ) -> None:
        super().__init__()
        # Networks and optimizer factories stay out of the hyperparameters (checkpoints hold only
        # plain data and tensors, loadable with torch.load(weights_only=True) on resume).
        self.save_hyperparameters(logger=False, ignore=[
            "autoencoder", "generator", "discriminator", "optimizer_g", "optimizer_d"])
        self.optimizer_factories = (optimizer_g, optimizer_d)
        self.automatic_optimization = False
        if generator.kind != autoencoder.kind:
            raise InputError(f"enhancer kind {generator.kind} != autoencoder kind {autoencoder.kind}")
        self.kind = generator.kind
        if autoencoder_weights:
            load_autoencoder_weights(autoencoder, autoencoder_weights)
        self.autoencoder = autoencoder.eval().requires_grad_(False)
        self.generator = generator
        self.discriminator = discriminator
        # The fixed VGG is kept out of the state dict (it is a pinned asset, not a result).
        use_vgg = self.kind == "albedo" and perceptual_weight > 0
        self.__dict__["_perceptual"] = VGGPerceptualLoss(load_vgg16(), perceptual_taps) if use_vgg else None
        # Training batches seen (drives the warm-up; saved in checkpoints so resuming keeps it).
        self.register_buffer("batches_seen", torch.zeros((), dtype=torch.long))

    def train(self, mode: bool = True):
        super().train(mode)
        self.autoencoder.eval()
        return self

    def _inputs(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            coarse = self.autoencoder(batch.texture)
        size = coarse.shape[-1] * self.generator.scale
        return coarse, resize_reflectance(getattr(batch, self.kind), size, self.kind)

    def forward(self, coarse: torch.Tensor, texture: torch.Tensor) -> torch.Tensor:
        return self.generator(coarse, texture)

    def _perceptual_loss(self, fake: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss_fn = self.__dict__["_perceptual"]
        if loss_fn is None:
            return fake.new_zeros(())
        loss_fn.to(fake.device)
        crop = self.hparams.perceptual_crop
        if crop and crop < fake.shape[-1]:
            i, j = (int(v) for v in torch.randint(0, fake.shape[-1] - crop + 1, (2,)))
            fake, target = fake[..., i:i + crop, j:j + crop], target[..., i:i + crop, j:j + crop]
        return loss_fn(linear_to_srgb(fake), linear_to_srgb(target))

    def training_step(self, batch, batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        coarse, target = self._inputs(batch)
        fake = self.generator(coarse, batch.texture)
        hp = self.hparams
        adversarial = int(self.batches_seen) >= hp.adversarial_start_step
        self.batches_seen += 1
        bs = batch.batch_size

        if adversarial:
            d_real = self.discriminator(target)
            d_fake = self.discriminator(fake.detach())
            loss_d = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real)) + \
                F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
            opt_d.zero_grad()
            self.manual_backward(loss_d)
            opt_d.step()
            self.log("train/loss_d", loss_d, batch_size=bs)

        loss_pix = F.mse_loss(fake, target)
        loss_perc = self._perceptual_loss(fake, target)
        loss_g = hp.pixel_weight * loss_pix + hp.perceptual_weight * loss_perc
        if adversarial:
            g_fake = self.discriminator(fake)
            loss_adv = F.binary_cross_entropy_with_logits(g_fake, torch.ones_like(g_fake))
            loss_g = loss_g + hp.adversarial_weight * loss_adv
            self.log("train/loss_adv", loss_adv, batch_size=bs)
        opt_g.zero_grad()
        self.manual_backward(loss_g)
        opt_g.step()
        self.log_dict({"train/loss": loss_g, "train/loss_pix": loss_pix, "train/loss_perc": loss_perc},
                      prog_bar=True, batch_size=bs)

    def validation_step(self, batch, batch_idx: int) -> None:
        coarse, target = self._inputs(batch)
        fake = self.generator(coarse, batch.texture)
        base = resize_reflectance(coarse, target.shape[-1], self.kind)
        bs = batch.batch_size
        metrics = {
            "val/psnr": map_psnr(fake, target, self.kind).mean(),
            "val/psnr_decoder": map_psnr(base, target, self.kind).mean(),
            "val/detail_psnr": detail_psnr(fake, target, self.kind).mean(),
            "val/detail_psnr_decoder": detail_psnr(base, target, self.kind).mean(),
            "val/detail_energy": detail_energy_ratio(fake, target, self.kind).mean(),
            "val/detail_energy_decoder": detail_energy_ratio(base, target, self.kind).mean(),
        }
        self.log("val/loss", F.mse_loss(fake, target), prog_bar=True, batch_size=bs, sync_dist=True)
        self.log_dict(metrics, batch_size=bs, sync_dist=True)
        n = self.hparams.log_images_every_n_epochs
        if batch_idx == 0 and n and self.current_epoch % n == 0 and not self.trainer.sanity_checking:
            grid = make_grid(
                [to_display(base, self.kind), to_display(fake, self.kind), to_display(target, self.kind)],
                size=target.shape[-1],
            )
            log_grids(self.loggers, f"val/{self.kind}_enhance_grid", grid, self.global_step)

    def configure_optimizers(self):
        return [
            self.optimizer_factories[0](params=self.generator.parameters()),
            self.optimizer_factories[1](params=self.discriminator.parameters()),
        ]

    def export_state(self) -> dict[str, torch.Tensor]:
        """Generator weights in :class:`~facerefl.models.networks.ReflectanceBranch` layout."""
        return {f"enhancer.{k}": v for k, v in self.generator.state_dict().items()}
