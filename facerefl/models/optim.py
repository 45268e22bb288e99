"""Shared ``configure_optimizers`` logic for Hydra-partial optimizers and schedulers."""

from __future__ import annotations

from typing import Callable, Iterable

import torch


def build_optimizer(optimizer: Callable, scheduler: Callable | None, params: Iterable[torch.nn.Parameter]):
    """``optimizer(params=...)`` and, if given, ``scheduler(optimizer=...)`` in Lightning's format (stepped every batch)."""
    opt = optimizer(params=params)
    if scheduler is None:
        return opt
    return {"optimizer": opt, "lr_scheduler": {"scheduler": scheduler(optimizer=opt), "interval": "step"}}
