"""Test-only data: a tiny LightningDataModule of structured random ReflectanceBatch tensors
(the real synthetic data module lives in facerefl.data)."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from facerefl.data.types import ReflectanceBatch, collate_reflectance


def smooth_field(gen: torch.Generator, channels: int, size: int, cells: int = 4) -> torch.Tensor:
    """Random low-frequency field ``[channels, size, size]`` in (0, 1) plus fine noise."""
    coarse = torch.rand(1, channels, cells, cells, generator=gen)
    x = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)[0]
    fine = 0.05 * torch.randn(channels, size, size, generator=gen)
    return (x + fine).clamp(0.0, 1.0)


def random_example(seed: int, size: int = 64) -> ReflectanceBatch:
    gen = torch.Generator().manual_seed(seed)
    albedo = smooth_field(gen, 3, size)
    spec = smooth_field(gen, 1, size // 2)
    nxy = (smooth_field(gen, 2, size // 2) - 0.5) * 0.8
    normal = torch.cat([nxy, torch.ones(1, size // 2, size // 2)], 0)
    normal = normal / normal.norm(dim=0, keepdim=True)
    light = torch.randn(3, 9, generator=gen) * 0.3
    light[:, 0] += 1.5
    mask = torch.ones(1, size, size)
    texture = torch.cat([(albedo * (0.6 + 0.4 * light[:, :1, None].clamp(0, 2) / 2)).clamp(0, 1).pow(1 / 2.2), mask])
    return ReflectanceBatch(texture[None], albedo[None], spec[None], normal[None], light[None])


class _Examples(Dataset):
    def __init__(self, n: int, offset: int, size: int) -> None:
        self.n, self.offset, self.size = n, offset, size

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> ReflectanceBatch:
        return random_example(self.offset + i, self.size)


class RandomReflectanceDataModule(pl.LightningDataModule):
    def __init__(self, size: int = 64, batch_size: int = 2, num_train: int = 8, num_val: int = 4) -> None:
        super().__init__()
        self.size, self.batch_size = size, batch_size
        self.num_train, self.num_val = num_train, num_val

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_Examples(self.num_train, 0, self.size), batch_size=self.batch_size,
                          shuffle=True, collate_fn=collate_reflectance)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(_Examples(self.num_val, 10_000, self.size), batch_size=self.batch_size,
                          collate_fn=collate_reflectance)


REPO = __import__("pathlib").Path(__file__).resolve().parents[2]
TEST_CONF = REPO / "tests" / "models" / "conf"


def compose_train(tmp_path, overrides: list[str] = (), real_data: bool = False):
    """Compose conf/train.yaml for a test: CPU, outputs in ``tmp_path``, no logger, and the
    random test data unless ``real_data``. HydraConfig is set so ``${hydra:...}`` resolves."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    base = [f"hydra.searchpath=[file://{TEST_CONF}]", "callbacks=none"]
    if not any(o.startswith("logger=") for o in overrides):
        base.append("~logger")
    if not real_data:
        base.append("data=random")
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose(config_name="train", return_hydra_config=True,
                      overrides=base + list(overrides))
    with open_dict(cfg):
        cfg.paths.root_dir = str(REPO)
        cfg.paths.log_dir = str(tmp_path)
        cfg.paths.output_dir = str(tmp_path / "run")
        cfg.hydra.runtime.output_dir = str(tmp_path / "run")
        cfg.hydra.job.num = 0
    HydraConfig().set_config(cfg)
    return cfg
