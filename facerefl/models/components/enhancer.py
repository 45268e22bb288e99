"""Detail enhancers R_*: an SRGAN generator and discriminator (paper section 5.1.3).

The generator takes a decoder output ``[B, C, s, s]`` (and, for specular and normal, the
texture T resized to s² as 4 extra input channels) and returns the map at ``scale·s``.
It follows SRGAN (9×9 head, residual blocks with batch norm and PReLU, a long skip,
pixel-shuffle ×2 upsampling stages, 9×9 tail), with one change: the tail predicts a
*residual* in head-activation space on top of the bilinearly upsampled input, and is
zero-initialized, so an untrained enhancer is exactly bilinear upsampling and its output
always stays in the valid range of the map kind (see :mod:`.heads`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from facerefl.models.components.heads import head_apply, head_inverse, map_channels

TEXTURE_CHANNELS = 4


class ResidualBlock(nn.Module):
    """conv3-BN-PReLU-conv3-BN plus identity; ``[B, C, H, W]`` → same shape."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
            nn.PReLU(channels),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class DetailEnhancer(nn.Module):
    """SRGAN generator R_*.

    Args:
        kind: ``"albedo"`` | ``"specular"`` | ``"normal"``.
        scale: upsampling factor, a power of two (2 for albedo, 4 for specular/normal).
        channels: feature width; num_blocks: residual blocks (SRGAN uses 16).
        use_texture: concatenate T as extra input channels (True for specular/normal).
    """

    def __init__(
        self,
        kind: str = "albedo",
        scale: int = 2,
        channels: int = 64,
        num_blocks: int = 16,
        use_texture: bool = False,
    ) -> None:
        super().__init__()
        if scale < 1 or 2 ** int(round(math.log2(scale))) != scale:
            raise ValueError(f"enhancer scale must be a power of two, got {scale}")
        self.kind = kind
        self.scale = scale
        self.use_texture = use_texture
        c_map = map_channels(kind)
        c_in = c_map + (TEXTURE_CHANNELS if use_texture else 0)
        self.head = nn.Sequential(nn.Conv2d(c_in, channels, 9, padding=4), nn.PReLU(channels))
        self.blocks = nn.Sequential(*[ResidualBlock(channels) for _ in range(num_blocks)])
        self.mid = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels)
        )
        ups = []
        for _ in range(int(round(math.log2(scale)))):
            ups += [
                nn.Conv2d(channels, channels * 4, 3, padding=1),
                nn.PixelShuffle(2),
                nn.PReLU(channels),
            ]
        self.upsample = nn.Sequential(*ups)
        self.tail = nn.Conv2d(channels, c_map, 9, padding=4)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, reflectance: torch.Tensor, texture: torch.Tensor | None = None) -> torch.Tensor:
        """Enhance.

        Args:
            reflectance: decoder output ``[B, C, s, s]`` of ``kind`` (valid range).
            texture: T ``[B, 4, H, W]`` (sRGB + mask, any size; resized to s²); required
                when ``use_texture``, ignored otherwise.

        Returns:
            ``[B, C, scale·s, scale·s]`` map of ``kind`` in its valid range.
        """
        x = reflectance
        if self.use_texture:
            if texture is None:
                raise ValueError(f"the {self.kind} enhancer needs the texture T as input")
            t = nn.functional.interpolate(
                texture, size=x.shape[-2:], mode="bilinear", align_corners=False,
                antialias=texture.shape[-1] > x.shape[-1],
            )
            x = torch.cat([x, t.to(x.dtype)], dim=1)
        f = self.head(x)
        f = f + self.mid(self.blocks(f))
        residual = self.tail(self.upsample(f))
        base = nn.functional.interpolate(
            reflectance, scale_factor=self.scale, mode="bilinear", align_corners=False
        )
        return head_apply(head_inverse(base, self.kind) + residual, self.kind)


class Discriminator(nn.Module):
    """SRGAN discriminator: map ``[B, C, H, W]`` → real/fake logit ``[B]``.

    Conv-BN-LeakyReLU blocks alternating stride 1 and 2 with doubling widths, global mean
    pooling (so any input size works) and a two-layer classifier.
    """

    def __init__(self, in_channels: int = 3, base_channels: int = 64, num_stages: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, base_channels, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(base_channels, base_channels, 3, stride=2, padding=1),
            nn.BatchNorm2d(base_channels),
            nn.LeakyReLU(0.2),
        ]
        c = base_channels
        for _ in range(num_stages - 1):
            for stride in (1, 2):
                c_out = c * 2 if stride == 1 else c
                layers += [
                    nn.Conv2d(c, c_out, 3, stride=stride, padding=1),
                    nn.BatchNorm2d(c_out),
                    nn.LeakyReLU(0.2),
                ]
                c = c_out
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(c, c * 2), nn.LeakyReLU(0.2), nn.Linear(c * 2, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean(dim=(2, 3))).squeeze(1)
