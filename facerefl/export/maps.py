"""Writers for the UV reflectance maps (albedo, specular, normal) in 8-bit, 16-bit and EXR.

Files and encodings (all row 0 = top of the texture, v = 0 at the bottom):

==========================  =========================================================
``albedo.png``              8-bit RGB, sRGB-encoded albedo
``albedo_linear16.png``     16-bit RGB, linear albedo ``x * 65535`` (tagged linear)
``albedo.exr``              float32 RGB, linear albedo
``specular.png``            8-bit grey, linear specular intensity t_r ``x * 255`` (tagged linear)
``specular_linear16.png``   16-bit grey, linear t_r ``x * 65535`` (tagged linear)
``specular.exr``            float32 Y, linear t_r
``normal.png``              8-bit RGB, tangent-space normal encoded ``(n + 1) / 2``
``normal16.png``            16-bit RGB, the same encoding
``normal.exr``              float32 RGB, the unit normal itself in [-1, 1]
==========================  =========================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from facerefl.export.gltf import encode_normal
from facerefl.export.images import save_exr, save_png


@dataclass(frozen=True)
class FaceMaps:
    """UV-space reflectance of one face (textures CHW, no batch axis; sizes may differ).

    The unbatched counterpart of :class:`facerefl.models.networks.ReflectanceMaps`; take
    one face out of a batch with :meth:`from_batch`.

    Attributes:
        albedo: ``[3, Ha, Wa]`` linear RGB in [0, 1].
        specular: ``[1, Hs, Ws]`` specular intensity t_r in [0, 1].
        normal: ``[3, Hn, Wn]`` tangent-space unit normals (x along T, y along B, z along N).
    """

    albedo: torch.Tensor
    specular: torch.Tensor
    normal: torch.Tensor

    def __post_init__(self) -> None:
        for name, ch in (("albedo", 3), ("specular", 1), ("normal", 3)):
            t = getattr(self, name)
            if not isinstance(t, torch.Tensor) or t.ndim != 3 or t.shape[0] != ch:
                shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise ValueError(f"{name} must be a [{ch}, H, W] tensor, got {shape}")

    @classmethod
    def from_batch(cls, maps, index: int = 0) -> "FaceMaps":
        """Face ``index`` of batched maps (any object with ``[B, C, H, W]`` ``albedo``,
        ``specular`` and ``normal`` tensors), detached."""
        return cls(*(getattr(maps, k)[index].detach() for k in ("albedo", "specular", "normal")))


def save_reflectance_maps(out_dir: Path, maps: FaceMaps, exr: bool = True) -> list[Path]:
    """Write the maps listed in the module docstring into ``out_dir``; return the paths."""
    out_dir = Path(out_dir)
    normal01 = encode_normal(maps.normal)
    written = [
        save_png(out_dir / "albedo.png", maps.albedo, bits=8, srgb_encode=True),
        save_png(out_dir / "albedo_linear16.png", maps.albedo, bits=16, linear=True),
        save_png(out_dir / "specular.png", maps.specular, bits=8, linear=True),
        save_png(out_dir / "specular_linear16.png", maps.specular, bits=16, linear=True),
        save_png(out_dir / "normal.png", normal01, bits=8),
        save_png(out_dir / "normal16.png", normal01, bits=16),
    ]
    if exr:
        written += [
            save_exr(out_dir / "albedo.exr", maps.albedo),
            save_exr(out_dir / "specular.exr", maps.specular),
            save_exr(out_dir / "normal.exr", maps.normal),
        ]
    return written
