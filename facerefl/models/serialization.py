"""Atomic writers for exported weights and text (temp file in the folder + ``os.replace``,
via :mod:`facerefl.data.atomic`)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from facerefl.data.atomic import atomic_write, atomic_write_text


def save_state_atomic(state: dict[str, torch.Tensor], path: Path) -> None:
    """Write a state dict as safetensors (contiguous CPU copies) atomically, mode 0644."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    atomic_write(Path(path), lambda tmp: save_file(tensors, tmp))


def write_text_atomic(path: Path, text: str) -> None:
    """Write UTF-8 text atomically, mode 0644."""
    atomic_write_text(Path(path), text)
