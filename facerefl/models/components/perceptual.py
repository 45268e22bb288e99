"""ImageNet VGG16 / AlexNet feature extractors and LPIPS v0.1, in plain torch.

Weights come from the pinned ``perceptual`` asset (see :mod:`.weights` and
:mod:`facerefl.assets`) and are read with safetensors only. All networks are NCHW and
frozen (``requires_grad=False``, eval mode) when built by the loaders here; gradients still
flow to their *inputs*, so they work as losses.

Input conventions:
- :class:`VGG16Features` / :class:`AlexNetFeatures` take ImageNet-normalized RGB
  (``(x - IMAGENET_MEAN) / IMAGENET_STD`` with x sRGB in [0, 1]); use :func:`imagenet_normalize`.
- :class:`LPIPS` takes sRGB RGB in [-1, 1] (its own scaling layer follows LPIPS v0.1).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from facerefl import assets

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# LPIPS v0.1 input scaling for images in [-1, 1].
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)

# (name, out channels) per conv; "M" is a 2×2 max pool. Taps are the ReLU outputs LPIPS uses.
VGG16_LAYOUT = (
    ("conv1_1", 64), ("conv1_2", 64), "M",
    ("conv2_1", 128), ("conv2_2", 128), "M",
    ("conv3_1", 256), ("conv3_2", 256), ("conv3_3", 256), "M",
    ("conv4_1", 512), ("conv4_2", 512), ("conv4_3", 512), "M",
    ("conv5_1", 512), ("conv5_2", 512), ("conv5_3", 512),
)
VGG16_TAPS = ("conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3")
# (name, out channels, kernel, stride, padding, max-pool before)
ALEXNET_LAYOUT = (
    ("conv1", 64, 11, 4, 2, False),
    ("conv2", 192, 5, 1, 2, True),
    ("conv3", 384, 3, 1, 1, True),
    ("conv4", 256, 3, 1, 1, False),
    ("conv5", 256, 3, 1, 1, False),
)


def _channel_vector(values: tuple[float, ...], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(values, dtype=like.dtype, device=like.device).view(1, -1, 1, 1)


def imagenet_normalize(x: torch.Tensor) -> torch.Tensor:
    """sRGB ``[B, 3, H, W]`` in [0, 1] → ImageNet-normalized input for the feature nets."""
    return (x - _channel_vector(IMAGENET_MEAN, x)) / _channel_vector(IMAGENET_STD, x)


class VGG16Features(nn.Module):
    """VGG16 convolutional trunk; ``forward(x)`` → ReLU outputs at :data:`VGG16_TAPS`.

    ``x``: ``[B, 3, H, W]`` ImageNet-normalized. Returns 5 maps with 64, 128, 256, 512, 512
    channels at H/1, H/2, H/4, H/8, H/16. ``max_tap`` stops early (e.g. 3 → first 3 taps).
    """

    def __init__(self) -> None:
        super().__init__()
        prev = 3
        self.convs = nn.ModuleDict()
        for item in VGG16_LAYOUT:
            if item == "M":
                continue
            name, c = item
            self.convs[name] = nn.Conv2d(prev, c, 3, padding=1)
            prev = c

    def forward(self, x: torch.Tensor, max_tap: int = len(VGG16_TAPS)) -> list[torch.Tensor]:
        taps = []
        for item in VGG16_LAYOUT:
            if item == "M":
                x = nn.functional.max_pool2d(x, 2)
                continue
            name = item[0]
            x = torch.relu(self.convs[name](x))
            if name in VGG16_TAPS:
                taps.append(x)
                if len(taps) == max_tap:
                    break
        return taps


class AlexNetFeatures(nn.Module):
    """AlexNet convolutional trunk; ``forward(x)`` → the 5 ReLU outputs (64, 192, 384,
    256, 256 channels). ``x``: ``[B, 3, H, W]`` ImageNet-normalized, H, W ≥ 63."""

    def __init__(self) -> None:
        super().__init__()
        prev = 3
        self.convs = nn.ModuleDict()
        for name, c, k, s, p, _ in ALEXNET_LAYOUT:
            self.convs[name] = nn.Conv2d(prev, c, k, stride=s, padding=p)
            prev = c

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for name, _, _, _, _, pool in ALEXNET_LAYOUT:
            if pool:
                x = nn.functional.max_pool2d(x, 3, stride=2)
            x = torch.relu(self.convs[name](x))
            taps.append(x)
        return taps


class LPIPS(nn.Module):
    """LPIPS v0.1 distance (learned linear weights over unit-normalized deep features).

    ``forward(a, b)``: two sRGB images ``[B, 3, H, W]`` in [-1, 1] → distances ``[B]``
    (0 for identical images, larger = more different).
    """

    def __init__(self, net: str = "vgg") -> None:
        super().__init__()
        if net not in ("vgg", "alex"):
            raise ValueError(f"LPIPS net must be 'vgg' or 'alex', got {net!r}")
        self.net_name = net
        self.features = VGG16Features() if net == "vgg" else AlexNetFeatures()
        chans = [64, 128, 256, 512, 512] if net == "vgg" else [c for _, c, *_ in ALEXNET_LAYOUT]
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in chans)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.shape != b.shape or a.ndim != 4 or a.shape[1] != 3:
            raise ValueError(f"LPIPS needs two [B, 3, H, W] images, got {a.shape} and {b.shape}")
        shift, scale = _channel_vector(LPIPS_SHIFT, a), _channel_vector(LPIPS_SCALE, a)
        fa = self.features((a - shift) / scale)
        fb = self.features((b - shift) / scale)
        total = a.new_zeros(a.shape[0])
        for lin, x, y in zip(self.lins, fa, fb):
            x = x / (x.norm(dim=1, keepdim=True) + 1e-10)
            y = y / (y.norm(dim=1, keepdim=True) + 1e-10)
            total = total + lin((x - y) ** 2).mean(dim=(1, 2, 3))
        return total


class VGGPerceptualLoss(nn.Module):
    """Mean squared distance between ImageNet-VGG16 features (SRGAN's perceptual term).

    ``forward(pred, target)``: sRGB ``[B, 3, H, W]`` in [0, 1] → scalar; features are taken
    at the first ``num_taps`` of :data:`VGG16_TAPS` and each tap's MSE is averaged.
    """

    def __init__(self, vgg: VGG16Features, num_taps: int = 3) -> None:
        super().__init__()
        self.vgg = vgg
        self.num_taps = num_taps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        fp = self.vgg(imagenet_normalize(pred), self.num_taps)
        with torch.no_grad():
            ft = self.vgg(imagenet_normalize(target), self.num_taps)
        return sum(nn.functional.mse_loss(p, t) for p, t in zip(fp, ft)) / len(fp)


def _frozen(module: nn.Module, path: Path) -> nn.Module:
    module.load_state_dict(load_file(str(path)))
    module.eval()
    module.requires_grad_(False)
    return module


def load_vgg16() -> VGG16Features:
    """ImageNet VGG16 trunk from the ``perceptual`` asset (raises ``AssetMissingError``)."""
    return _frozen(VGG16Features(), assets.asset_path("perceptual", "vgg16.safetensors"))


def load_alexnet() -> AlexNetFeatures:
    """ImageNet AlexNet trunk from the ``perceptual`` asset."""
    return _frozen(AlexNetFeatures(), assets.asset_path("perceptual", "alexnet.safetensors"))


def load_lpips(net: str = "vgg") -> LPIPS:
    """LPIPS v0.1 with ImageNet trunk ``net`` ("vgg" | "alex") and its linear layers."""
    model = LPIPS(net)
    trunk = "vgg16" if net == "vgg" else "alexnet"
    state = {f"features.{k}": v for k, v in
             load_file(str(assets.asset_path("perceptual", f"{trunk}.safetensors"))).items()}
    state.update(load_file(str(assets.asset_path("perceptual", f"lpips_{net}.safetensors"))))
    model.load_state_dict(state)
    model.eval()
    model.requires_grad_(False)
    return model
