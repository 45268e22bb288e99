"""SH light regressor (paper section 5.2): texture T → 27 SH coefficients z_e."""

from __future__ import annotations

import torch
from torch import nn

from facerefl.models.components.autoencoder import resize_map

NUM_CONVS = 10


class SHRegressor(nn.Module):
    """VGG-like regressor: 10 conv3×3-BN-ReLU layers in five stages of two (max pooling
    between stages), global mean pooling and one fully connected layer.

    Args:
        input_size: side the texture is resized to (256 in the paper).
        width: channels of the first stage; stages use width·(1, 2, 4, 8, 8).
        in_channels: 4 (sRGB RGB + skin mask).

    ``forward(texture [B, 4, H, W])`` returns the incident-radiance lighting ``[B, 3, 9]``
    (linear RGB, camera frame, SH order of docs/conventions.md);
    ``reshape(B, 27)`` is the color-major z_e.
    """

    def __init__(self, input_size: int = 256, width: int = 64, in_channels: int = 4) -> None:
        super().__init__()
        self.input_size = input_size
        widths = [width * m for m in (1, 2, 4, 8, 8)]
        layers: list[nn.Module] = []
        prev = in_channels
        for stage, c in enumerate(widths):
            if stage > 0:
                layers.append(nn.MaxPool2d(2))
            for _ in range(NUM_CONVS // len(widths)):
                layers += [nn.Conv2d(prev, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU()]
                prev = c
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(prev, 27)

    def forward(self, texture: torch.Tensor) -> torch.Tensor:
        x = self.features(resize_map(texture, self.input_size))
        return self.fc(x.mean(dim=(2, 3))).view(-1, 3, 9)


def flip_u_at_random(texture: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """T ``[B, C, H, W]`` with each example flipped along u (the last axis) with probability
    ½, and the ``[B]`` bool mask of the flipped ones (the training modules' mirroring)."""
    flip = torch.rand(texture.shape[0], device=texture.device) < 0.5
    return torch.where(flip[:, None, None, None], texture.flip(-1), texture), flip
