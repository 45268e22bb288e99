"""Reflectance encoder E_* and decoder D_* (paper section 5.1.1-5.1.2).

The encoder turns the unwrapped texture T (``[B, 4, S, S]``: sRGB RGB in [0, 1] + skin mask
in {0, 1}, UV space, row 0 at the top) into feature maps F^1..F^L and a latent vector z with
repeated 3×3 stride-2 convolutions, each followed by LeakyReLU and batch normalization;
the last convolution (2×2 → 1×1) gives z and has neither, so z is an unconstrained vector
the fitting stage can optimize. The decoder mirrors the stack with 4×4 stride-2 transposed
convolutions and, when ``use_skips``, concatenates only F^1..F^3 (the first three encoder
layers, section 5.1.2) at the matching resolutions.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from facerefl.models.components.heads import head_apply, map_channels

NUM_SKIPS = 3


def num_levels(input_size: int) -> int:
    """Number of stride-2 layers from ``input_size``² down to 1×1 (``log2(input_size)``)."""
    levels = int(round(math.log2(input_size))) if input_size > 0 else 0
    if input_size < 2 ** (NUM_SKIPS + 1) or 2**levels != input_size:
        raise ValueError(
            f"input_size must be a power of two ≥ {2 ** (NUM_SKIPS + 1)}, got {input_size}"
        )
    return levels


def level_channels(input_size: int, base_channels: int, max_channels: int) -> list[int]:
    """Channels of F^1..F^{L-1}: ``min(base·2^(l-1), max)`` (F^L is z itself)."""
    return [min(base_channels * 2**i, max_channels) for i in range(num_levels(input_size) - 1)]


class Encoder(nn.Module):
    """E_*: texture → (skips F^1..F^3, latent z).

    Args:
        input_size: S, side of the (square) input; a power of two ≥ 16.
        latent_dim: k, length of z.
        base_channels, max_channels: width of F^1 and the cap of the doubling widths.
        in_channels: 4 (RGB + mask).
    """

    def __init__(
        self,
        input_size: int = 256,
        latent_dim: int = 512,
        base_channels: int = 64,
        max_channels: int = 512,
        in_channels: int = 4,
    ) -> None:
        super().__init__()
        self.input_size = input_size
        self.latent_dim = latent_dim
        chans = level_channels(input_size, base_channels, max_channels)
        layers = []
        prev = in_channels
        for c in chans:
            layers.append(
                nn.Sequential(
                    nn.Conv2d(prev, c, 3, stride=2, padding=1),
                    nn.LeakyReLU(0.2),
                    nn.BatchNorm2d(c),
                )
            )
            prev = c
        self.layers = nn.ModuleList(layers)
        self.to_latent = nn.Conv2d(prev, latent_dim, 3, stride=2, padding=1)

    def forward(self, texture: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Encode.

        Args:
            texture: ``[B, in_channels, S, S]``, S = ``input_size`` (resize first).

        Returns:
            skips: [F^1, F^2, F^3], ``F^l`` of shape ``[B, C_l, S/2^l, S/2^l]``.
            z: ``[B, latent_dim]``.
        """
        if texture.ndim != 4 or texture.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(
                f"encoder expects [B, C, {self.input_size}, {self.input_size}], "
                f"got {tuple(texture.shape)}"
            )
        x = texture
        skips = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < NUM_SKIPS:
                skips.append(x)
        z = self.to_latent(x).flatten(1)
        return skips, z


class Decoder(nn.Module):
    """D_*: (skips F^1..F^3, z) → reflectance map of ``kind`` at ``input_size``².

    Args:
        kind: ``"albedo"`` | ``"specular"`` | ``"normal"`` (sets channels and output head).
        input_size, latent_dim, base_channels, max_channels: as the paired encoder.
        use_skips: False for the no-skip ablation (section 8.4.1); skips are then ignored.
    """

    def __init__(
        self,
        kind: str = "albedo",
        input_size: int = 256,
        latent_dim: int = 512,
        base_channels: int = 64,
        max_channels: int = 512,
        use_skips: bool = True,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.input_size = input_size
        self.use_skips = use_skips
        out_ch = map_channels(kind)
        chans = level_channels(input_size, base_channels, max_channels)
        # Decoder layer j maps level l = L-j+1 (resolution S/2^l) to level l-1. The input of
        # the layer that leaves level l carries F^l as well when l ≤ 3 and skips are on.
        layers = []
        prev = latent_dim
        for lvl in range(len(chans), 0, -1):  # produce F-resolution levels L-1..1
            c = chans[lvl - 1]
            layers.append(
                nn.Sequential(
                    nn.ConvTranspose2d(prev, c, 4, stride=2, padding=1),
                    nn.LeakyReLU(0.2),
                    nn.BatchNorm2d(c),
                )
            )
            prev = c + (c if use_skips and lvl <= NUM_SKIPS else 0)
        self.layers = nn.ModuleList(layers)
        self.to_map = nn.ConvTranspose2d(prev, out_ch, 4, stride=2, padding=1)

    def forward(self, skips: list[torch.Tensor], z: torch.Tensor) -> torch.Tensor:
        """Decode.

        Args:
            skips: [F^1, F^2, F^3] from :class:`Encoder` (ignored when ``use_skips`` is off).
            z: ``[B, latent_dim]``.

        Returns:
            ``[B, C, S, S]`` map in the valid range of ``kind`` (see :mod:`.heads`).
        """
        if self.use_skips and len(skips) != NUM_SKIPS:
            raise ValueError(f"decoder needs {NUM_SKIPS} skip feature maps, got {len(skips)}")
        x = z[:, :, None, None]
        n = len(self.layers)
        for j, layer in enumerate(self.layers):
            x = layer(x)
            lvl = n - j  # level (1-based) whose resolution x now has
            if self.use_skips and lvl <= NUM_SKIPS:
                x = torch.cat([x, skips[lvl - 1]], dim=1)
        return head_apply(self.to_map(x), self.kind)


class ReflectanceAutoencoder(nn.Module):
    """E_* and D_* of one component, trained together (section 7.2.1).

    ``forward(texture)`` resizes the texture ``[B, 4, H, W]`` to ``input_size``² and returns
    the decoded map ``[B, C, input_size, input_size]``.
    """

    def __init__(
        self,
        kind: str = "albedo",
        input_size: int = 256,
        latent_dim: int = 512,
        base_channels: int = 64,
        max_channels: int = 512,
        use_skips: bool = True,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.input_size = input_size
        self.encoder = Encoder(input_size, latent_dim, base_channels, max_channels)
        self.decoder = Decoder(kind, input_size, latent_dim, base_channels, max_channels, use_skips)

    def encode(self, texture: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Texture ``[B, 4, H, W]`` (any size) → (skips, z); see :meth:`Encoder.forward`."""
        return self.encoder(resize_map(texture, self.input_size))

    def decode(self, skips: list[torch.Tensor], z: torch.Tensor) -> torch.Tensor:
        """(skips, z) → map ``[B, C, input_size, input_size]``; see :meth:`Decoder.forward`."""
        return self.decoder(skips, z)

    def forward(self, texture: torch.Tensor) -> torch.Tensor:
        return self.decode(*self.encode(texture))


def resize_map(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear (antialiased when shrinking) resize of ``[B, C, H, W]`` to ``[B, C, size, size]``.

    Returns ``x`` itself when it already has that size. Unit normals are *not* renormalized
    here; use :func:`resize_reflectance` for them.
    """
    if x.shape[-2:] == (size, size):
        return x
    shrink = x.shape[-1] > size or x.shape[-2] > size
    return nn.functional.interpolate(
        x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink
    )


def resize_reflectance(x: torch.Tensor, size: int, kind: str) -> torch.Tensor:
    """:func:`resize_map` that keeps normals unit length (renormalized after filtering)."""
    y = resize_map(x, size)
    if kind == "normal" and y is not x:
        y = y / y.norm(dim=1, keepdim=True).clamp_min(1e-8)
    return y
