"""Typed containers handed from the data pipeline to training and evaluation.

``ReflectanceBatch`` is the contract between :mod:`facerefl.data` and the networks. It is a
plain (non-frozen) dataclass so that Lightning's ``apply_to_collection`` can move every
tensor field to the training device; :meth:`ReflectanceBatch.to` does the same by hand.

All maps are NCHW in the canonical UV layout of the template (docs/conventions.md: row 0 of
a texture is v = 1). Colour spaces: ``texture`` and ``image`` are sRGB-encoded; ``albedo``
and ``light`` are linear RGB.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Sequence

import torch
from torch import Tensor

#: Fields that every batch carries.
REQUIRED_FIELDS = ("texture", "albedo", "specular", "normal", "light")


@dataclass
class ReflectanceBatch:
    """One batch (or, with B = 1 squeezed away, one example) of synthetic training data.

    Required (B = batch size; sizes per preset, e.g. H = 256, Hs = 128 on the CPU preset):
        texture: ``[B, 4, H, W]`` unwrapped photo texture T: channels 0-2 sRGB in [0, 1],
            channel 3 the skin/visibility mask in {0, 1}; holes Poisson-filled.
        albedo: ``[B, 3, H, W]`` diffuse albedo T_a, linear RGB in [0, 1].
        specular: ``[B, 1, Hs, Ws]`` specular intensity T_s (t_r of eq. 5) in [0, 1].
        normal: ``[B, 3, Hs, Ws]`` tangent-space unit normals T_n (x along T, y along B,
            z along N; "OpenGL" green-up), components in [-1, 1].
        light: ``[B, 3, 9]`` incident-radiance SH z_e, linear RGB, camera frame, order
            ``[Y00, Y1-1, Y10, Y11, Y2-2, Y2-1, Y20, Y21, Y22]``; ``light.reshape(B, 27)``
            is the paper's 27-vector.

    Optional (``None`` when the producer did not compute them; used by evaluation):
        image: ``[B, 3, h, w]`` the rendered photo, sRGB in [0, 1] (after noise / JPEG).
        uv_mask: ``[B, 1, H, W]`` texels seen in the photo before hole filling, {0, 1}.
        vis_sh: ``[B, 9, H, W]`` baked visibility SH, camera frame.
        bent_normal: ``[B, 3, H, W]`` baked bent normals, tangent space, unit.
        vertices: ``[B, V, 3]`` posed mesh vertices in the camera frame (template topology).
        intrinsics: ``[B, 4]`` pinhole ``(fx, fy, cx, cy)`` in pixels of ``image``.
        seed: ``[B]`` int64, the seed that generated each example (reproducibility).
    """

    texture: Tensor
    albedo: Tensor
    specular: Tensor
    normal: Tensor
    light: Tensor
    image: Tensor | None = None
    uv_mask: Tensor | None = None
    vis_sh: Tensor | None = None
    bent_normal: Tensor | None = None
    vertices: Tensor | None = None
    intrinsics: Tensor | None = None
    seed: Tensor | None = None

    def __post_init__(self) -> None:
        b = self.texture.shape[0] if self.texture.dim() == 4 else None
        _check(self.texture, "texture", 4, 4)
        _check(self.albedo, "albedo", 4, 3)
        _check(self.specular, "specular", 4, 1)
        _check(self.normal, "normal", 4, 3)
        if self.light.dim() != 3 or tuple(self.light.shape[1:]) != (3, 9):
            raise ValueError(f"light must be [B, 3, 9], got {tuple(self.light.shape)}")
        for f in fields(self):
            t = getattr(self, f.name)
            if t is not None and t.shape[0] != b:
                raise ValueError(
                    f"{f.name} has batch size {t.shape[0]} but texture has {b}; "
                    "all fields of a ReflectanceBatch share the leading dimension"
                )

    @property
    def batch_size(self) -> int:
        return int(self.texture.shape[0])

    def to(self, *args, **kwargs) -> ReflectanceBatch:
        """Move every tensor (``Tensor.to`` semantics); the int64 ``seed`` keeps its dtype."""
        out = {}
        for f in fields(self):
            t = getattr(self, f.name)
            if t is None:
                out[f.name] = None
            elif t.is_floating_point():
                out[f.name] = t.to(*args, **kwargs)
            else:
                dev = _device_of(args, kwargs)
                out[f.name] = t.to(dev) if dev is not None else t
        return replace(self, **out)

    def tensors(self) -> dict[str, Tensor]:
        """Field name -> tensor for the fields that are set (used by the disk cache)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def __getitem__(self, index: int | slice) -> ReflectanceBatch:
        """Sub-batch ``index`` (an int keeps a batch dimension of 1)."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return ReflectanceBatch(
            **{k: (None if v is None else v[index]) for k, v in self._all().items()}
        )

    def _all(self) -> dict[str, Tensor | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _check(t: Tensor, name: str, dim: int, channels: int) -> None:
    if t.dim() != dim or t.shape[1] != channels:
        raise ValueError(f"{name} must be [B, {channels}, H, W], got {tuple(t.shape)}")


def _device_of(args: tuple, kwargs: dict) -> torch.device | None:
    if "device" in kwargs:
        return torch.device(kwargs["device"])
    for a in args:
        if isinstance(a, (str, torch.device)):
            return torch.device(a)
        if isinstance(a, Tensor):
            return a.device
    return None


def collate_reflectance(items: Sequence[ReflectanceBatch]) -> ReflectanceBatch:
    """Concatenate examples (each with a leading batch dimension) into one batch.

    An optional field is kept only when every item has it.

    Raises:
        ValueError: ``items`` is empty or the items' map sizes differ.
    """
    if not items:
        raise ValueError("collate_reflectance needs at least one item")
    out: dict[str, Tensor | None] = {}
    for f in fields(ReflectanceBatch):
        vals = [getattr(it, f.name) for it in items]
        if any(v is None for v in vals):
            out[f.name] = None
            continue
        shapes = {tuple(v.shape[1:]) for v in vals}
        if len(shapes) != 1:
            raise ValueError(f"cannot collate {f.name}: per-item shapes differ {sorted(shapes)}")
        out[f.name] = torch.cat(vals, dim=0)
    return ReflectanceBatch(**out)
