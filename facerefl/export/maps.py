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

from pathlib import Path

from facerefl.export.gltf import encode_normal
from facerefl.export.images import save_exr, save_png
from facerefl.render.maps import ReflectanceMaps


def save_reflectance_maps(out_dir: Path, maps: ReflectanceMaps, exr: bool = True) -> list[Path]:
    """Write one face's ``[C, H, W]`` maps (:meth:`ReflectanceMaps.face` of a batch), as
    listed in the module docstring, into ``out_dir``; return the paths."""
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
