"""Scale-out fitting of many photos with Lightning's predict loop.

``python optimize.py image=FOLDER distributed.enabled=true distributed.accelerator=gpu
distributed.devices=8 distributed.num_nodes=4 distributed.strategy=ddp`` shards the folder
across every process: Lightning wraps the photo list in a distributed sampler that does
not repeat items in prediction, each rank fits its share (per-photo fitting needs
gradients, so the predict loop runs with ``inference_mode=False`` and
``torch.enable_grad()``), and the rows are gathered so every rank can print the summary.
No scheduler of our own: launching, ranks and sharding are Lightning's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset

from facerefl.errors import InputError
from facerefl.tasks.cli import command_as_given

__all__ = ["PhotoJob", "PhotoList", "PhotoFitModule", "predict_photos"]


class PhotoJob(Protocol):
    """What each process runs: :meth:`setup` once on the rank's device, then one call per
    photo path returning that photo's row (picklable: ``ddp_spawn`` sends it to the ranks).
    :class:`facerefl.tasks.optimize.FitJob` is the one the optimize task passes."""

    def setup(self, device: torch.device) -> None: ...

    def __call__(self, image: str) -> Any: ...


class PhotoList(Dataset):
    """Index → photo path (as a string)."""

    def __init__(self, images: list[Path]) -> None:
        self.images = [str(p) for p in images]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> str:
        return self.images[i]


def _collate(items: list[str]) -> list[str]:
    return items


class PhotoFitModule(pl.LightningModule):
    """Runs ``job`` on the photos of each predict batch; returns ``(path, row)`` pairs.

    The job is set up in :meth:`setup`, on the rank's own device.
    """

    def __init__(self, job: PhotoJob) -> None:
        super().__init__()
        self.job = job

    def setup(self, stage: str) -> None:
        self.job.setup(self.device)

    def predict_step(self, batch: list[str], batch_idx: int) -> list[tuple[str, Any]]:
        with torch.enable_grad():
            return [(image, self.job(image)) for image in batch]


def predict_photos(distributed: DictConfig, images: list[Path], job: PhotoJob) -> list[Any]:
    """Run ``job`` on every photo under a Lightning trainer configured by ``distributed``
    (``accelerator``, ``devices``, ``num_nodes``, ``strategy``: the ``distributed`` group of
    ``conf/optimize.yaml``). Returns every rank's rows, on every rank, in the order of
    ``images``."""
    d = distributed
    if any(word in str(d.strategy) for word in ("spawn", "fork", "notebook")):
        # Lightning's spawn/fork launchers hand back nothing from the processes they start
        raise InputError(f"distributed.strategy={d.strategy} cannot return the fitted rows; use "
                         "distributed.strategy=ddp (the other processes run this command again)")
    trainer = pl.Trainer(
        accelerator=d.accelerator, devices=d.devices, num_nodes=d.num_nodes, strategy=d.strategy,
        inference_mode=False, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False,
    )
    loader = DataLoader(PhotoList(images), batch_size=1, shuffle=False, collate_fn=_collate)
    with command_as_given():  # the ddp launcher runs this command again for the other ranks
        out = trainer.predict(PhotoFitModule(job), dataloaders=loader)
    pairs = [pair for batch in (out or []) for pair in batch]
    if trainer.world_size > 1 and torch.distributed.is_initialized():
        gathered: list = [None] * trainer.world_size
        torch.distributed.all_gather_object(gathered, pairs)
        pairs = [pair for part in gathered for pair in part]
        # tear the process group down here: gloo threads still alive at interpreter exit
        # abort the process ("terminate called without an active exception"), seen once
        # in the test suite after every photo had been written
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    order = {str(p): i for i, p in enumerate(images)}
    return [row for _, row in sorted(pairs, key=lambda pair: order.get(pair[0], len(order)))]
