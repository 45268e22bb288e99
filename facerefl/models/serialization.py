"""Atomic writer for exported weights (temp file in the folder + ``os.replace``, via
:func:`facerefl.fsutil.atomic_write`)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from facerefl.fsutil import atomic_write


def save_state_atomic(state: dict[str, torch.Tensor], path: Path) -> None:
    """Write a state dict as safetensors (contiguous CPU copies) atomically; missing parent
    folders are created."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    atomic_write(Path(path), lambda tmp: save_file(tensors, tmp), make_parents=True)
