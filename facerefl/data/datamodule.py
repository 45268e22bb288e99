"""Lightning DataModule of synthetic reflectance examples (issue 4, part 6).

Training examples come from a cache folder (``python -m facerefl.data.make_cache``) when
``cache_dir`` is given, else they are generated on the fly (with ``fresh_each_epoch``,
``num_train`` new ones every epoch: epoch e uses seeds ``train_seed + e * num_train + i``,
shuffled by :class:`~facerefl.data.cache.EpochSampler`); validation examples are
generated on the fly from a disjoint seed range (or read from ``val_cache_dir``). Each
example depends only on its seed (see :mod:`facerefl.data.assemble`), so DataLoader
workers need no seeding of their own and any worker count gives the same data.
Batches are :class:`~facerefl.data.types.ReflectanceBatch` (Lightning moves them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pytorch_lightning as pl
from torch.utils.data import DataLoader, Dataset, Sampler

from facerefl.data.assemble import GeneratorSettings, Sizes
from facerefl.data.cache import CachedDataset, EpochSampler, SyntheticDataset, open_caches
from facerefl.data.effects import EffectSettings
from facerefl.data.types import collate_reflectance

#: First seed of the on-the-fly validation examples.
VAL_SEED = 500_000_000


class SyntheticDataModule(pl.LightningDataModule):
    """Synthetic (T, T_a, T_s, T_n, z_e) examples.

    Args:
        image, texture, detail: photo size, T/albedo size, specular/normal size.
        batch_size: examples per batch.
        num_train: on-the-fly training examples per epoch (ignored with ``cache_dir``).
        num_val: validation examples.
        train_seed: first training seed.
        cache_dir: read training examples from this cache folder, or from several
            (a list; made with disjoint seeds, read as one set in the given order).
        val_cache_dir: read validation examples from this cache folder.
        num_workers: DataLoader worker processes.
        bake_dirs: visibility-bake ray directions per vertex.
        fresh_each_epoch: on-the-fly training makes new examples every epoch.
        effects: the realism effects of :mod:`facerefl.data.effects` at their default
            probabilities (:class:`EffectSettings`), in training and validation examples;
            False: none.
    """

    def __init__(
        self,
        image: int = 256,
        texture: int = 128,
        detail: int = 128,
        batch_size: int = 8,
        num_train: int = 2048,
        num_val: int = 32,
        train_seed: int = 0,
        cache_dir: str | Sequence[str] | None = None,
        val_cache_dir: str | None = None,
        num_workers: int = 0,
        bake_dirs: int = 128,
        fresh_each_epoch: bool = True,
        effects: bool = True,
    ) -> None:
        super().__init__()
        self.settings = GeneratorSettings(
            sizes=Sizes(image, texture, detail), bake_dirs=bake_dirs,
            effects=EffectSettings() if effects else EffectSettings.off())
        self.batch_size, self.num_workers = int(batch_size), int(num_workers)
        self.num_train, self.num_val, self.train_seed = int(num_train), int(num_val), int(train_seed)
        self.cache_dir = cache_dir or None
        self.val_cache_dir = Path(val_cache_dir).expanduser() if val_cache_dir else None
        self.fresh_each_epoch = bool(fresh_each_epoch)
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            self.train_set = (open_caches(self.cache_dir) if self.cache_dir is not None
                              else SyntheticDataset(self.settings, self.num_train, self.train_seed,
                                                    unbounded=self.fresh_each_epoch))
        if self.val_set is None:
            self.val_set = (CachedDataset(self.val_cache_dir) if self.val_cache_dir is not None
                            else SyntheticDataset(self.settings, self.num_val, VAL_SEED))

    def _loader(self, ds: Dataset, shuffle: bool, sampler: Sampler | None = None) -> DataLoader:
        return DataLoader(ds, batch_size=self.batch_size, shuffle=shuffle and sampler is None,
                          sampler=sampler, num_workers=self.num_workers,
                          collate_fn=collate_reflectance, persistent_workers=self.num_workers > 0,
                          drop_last=shuffle and len(ds) > self.batch_size)

    def train_dataloader(self) -> DataLoader:
        self.setup()
        fresh = isinstance(self.train_set, SyntheticDataset) and self.train_set.unbounded
        sampler = EpochSampler(len(self.train_set), self.train_seed) if fresh else None
        return self._loader(self.train_set, shuffle=True, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        self.setup()
        return self._loader(self.val_set, shuffle=False)
