"""Image-grid logging that works with whatever logger the trainer has (CSV ignores images)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def to_display(x: torch.Tensor, kind: str) -> torch.Tensor:
    """Map ``[B, C, H, W]`` of ``kind`` to displayable RGB in [0, 1] (normals as (n+1)/2,
    textures drop their mask channel, single channels are repeated)."""
    if kind == "normal":
        x = (x + 1.0) * 0.5
    if x.shape[1] == 4:
        x = x[:, :3]
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return x.clamp(0.0, 1.0)


def make_grid(rows: list[torch.Tensor], size: int, max_items: int = 4, pad: int = 2) -> torch.Tensor:
    """Stack RGB batches ``[B, 3, h, w]`` as rows of a grid → ``[3, H, W]`` in [0, 1]."""
    tiles = []
    for r in rows:
        r = F.interpolate(r[:max_items].float(), size=(size, size), mode="nearest")
        r = F.pad(r, (pad, pad, pad, pad), value=1.0)
        tiles.append(torch.cat(list(r), dim=2))
    return torch.cat(tiles, dim=1).detach().cpu()


def log_grid(logger, key: str, grid: torch.Tensor, step: int) -> bool:
    """Log a ``[3, H, W]`` grid to W&B or TensorBoard; returns False for loggers without images."""
    if logger is None:
        return False
    name = type(logger).__name__
    if name == "WandbLogger":
        logger.log_image(key=key, images=[grid.permute(1, 2, 0).numpy()], step=step)
        return True
    if name == "TensorBoardLogger":
        logger.experiment.add_image(key, grid, global_step=step)
        return True
    return False


def log_grids(loggers, key: str, grid: torch.Tensor, step: int) -> None:
    """:func:`log_grid` to every logger of a trainer."""
    for lg in loggers or []:
        log_grid(lg, key, grid, step)
