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

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset

from facerefl.tasks.optimize import PhotoReport, environments, fit_one, load_networks, output_dirs

__all__ = ["PhotoList", "PhotoFitModule", "predict_photos"]


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
    """Fits the photos of each predict batch; returns one :class:`PhotoReport` each.

    The networks are loaded in :meth:`setup`, on the rank's own device.
    """

    def __init__(self, cfg: DictConfig, out_dirs: dict[str, Path]) -> None:
        super().__init__()
        self.cfg = cfg
        self.out_dirs = out_dirs
        self.nets = None
        self.envs: dict[str, torch.Tensor] = {}

    def setup(self, stage: str) -> None:
        self.nets = load_networks(self.cfg).to(self.device)
        self.envs = environments(self.cfg)

    def predict_step(self, batch: list[str], batch_idx: int) -> list[dict]:
        rows = []
        with torch.enable_grad():
            for image in batch:
                row = fit_one(Path(image), self.out_dirs[image], self.cfg, self.nets, self.envs)
                rows.append(row.__dict__)
        return rows


def predict_photos(cfg: DictConfig, images: list[Path], from_folder: bool) -> list[PhotoReport]:
    """Fit ``images`` under a Lightning trainer configured by ``cfg.distributed``."""
    d = cfg.distributed
    trainer = pl.Trainer(
        accelerator=d.accelerator, devices=d.devices, num_nodes=d.num_nodes, strategy=d.strategy,
        inference_mode=False, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False,
    )
    loader = DataLoader(PhotoList(images), batch_size=1, shuffle=False, collate_fn=_collate)
    out = trainer.predict(PhotoFitModule(cfg, output_dirs(cfg, images, from_folder)), dataloaders=loader)
    rows = [PhotoReport(**r) for batch in (out or []) for r in batch]
    if trainer.world_size > 1:
        gathered: list = [None] * trainer.world_size
        torch.distributed.all_gather_object(gathered, [r.__dict__ for r in rows])
        rows = [PhotoReport(**r) for part in gathered for r in part]
    order = {str(p): i for i, p in enumerate(images)}
    return sorted(rows, key=lambda r: order.get(r.image, len(order)))
