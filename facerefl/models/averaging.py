"""Weight averaging over the end of a run (beyond the paper; stochastic weight averaging).

A regressor trained to a plateau keeps wandering around a wide basin; the mean of the
weights it visits often generalizes better than any one of them. :class:`WeightAverage`
keeps that mean and puts it in the module when training ends, so the stage's export (and
its final validation, :func:`facerefl.tasks.train.train`) are of the averaged weights.
Measured in ``docs/photo_unwrap.md`` (session 9).
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn


class WeightAverage(pl.Callback):
    """Running mean of a module's parameters, swapped in when training ends.

    Args:
        start: first optimizer step whose weights enter the mean; a value in (0, 1) is a
            fraction of ``trainer.max_steps``.
        every: steps between two samples of the weights.
        bn_batches: training batches over which batch-norm statistics are re-estimated
            for the averaged weights (the running statistics of the last weights do not
            belong to their mean). The module's ``forward`` must take ``batch.texture``
            (the light and level regressors' modules do).

    The mean and its sample count are stored in every checkpoint, so a resumed run
    continues the same average.
    """

    def __init__(self, start: float = 0.5, every: int = 50, bn_batches: int = 64) -> None:
        if start < 0 or every < 1 or bn_batches < 0:
            raise ValueError("WeightAverage needs start >= 0, every >= 1 and bn_batches >= 0")
        self.start, self.every, self.bn_batches = start, int(every), int(bn_batches)
        self.count = 0
        self.mean: dict[str, torch.Tensor] = {}

    def first_step(self, trainer: pl.Trainer) -> int:
        """The step from which weights are averaged."""
        if 0 < self.start < 1:
            return int(self.start * max(int(trainer.max_steps), 0))
        return int(self.start)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        step = trainer.global_step
        if step < self.first_step(trainer) or step % self.every:
            return
        self.count += 1
        with torch.no_grad():
            for name, p in pl_module.named_parameters():
                if name not in self.mean:
                    self.mean[name] = p.detach().clone()
                else:
                    self.mean[name] += (p.detach() - self.mean[name]) / self.count

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.count == 0:
            return
        with torch.no_grad():
            for name, p in pl_module.named_parameters():
                p.copy_(self.mean[name].to(p.device))
        if trainer.datamodule is not None:
            recompute_batch_norm(pl_module, trainer.datamodule.train_dataloader(), self.bn_batches)

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count, "mean": dict(self.mean)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.count = int(state_dict.get("count", 0))
        self.mean = {k: v.clone() for k, v in state_dict.get("mean", {}).items()}


@torch.no_grad()
def recompute_batch_norm(module: nn.Module, loader, batches: int) -> int:
    """Re-estimate the running statistics of every batch-norm layer of ``module`` as the
    plain mean over ``batches`` batches of ``loader`` (``module(batch.texture)`` in training
    mode); returns the batches used (0: the module has no batch norm, nothing changed)."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or batches == 0:
        return 0
    was_training, momenta = module.training, [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches seen
    module.train()
    device = next(module.parameters()).device
    used = 0
    for batch in loader:
        if used >= batches:
            break
        module(batch.texture.to(device))
        used += 1
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    module.train(was_training)
    return used
