"""Wavefront OBJ + MTL writer for the textured face.

The OBJ holds positions (``v``), texture coordinates (``vt``, v = 0 at the bottom, the OBJ
convention, so no flip), normals (``vn``) and triangles ``f a/a/a`` (1-based, shared
indices). The MTL points at texture files written next to it (by
:func:`facerefl.export.maps.save_reflectance_maps`): ``map_Kd`` the sRGB albedo,
``map_Ks`` the linear specular intensity, and the tangent-space normal map twice, in the
two forms importers read as a normal map, plus ``Pr``/``Pm`` roughness and metalness from
the PBR extension:

* ``norm normal.png`` — three.js's MTLLoader makes it the material's ``normalMap``
  (a ``map_Bump`` becomes a ``bumpMap``, a height field; when both are present three.js
  shades with the normal map, its shader checks the normal map first);
* ``map_Bump -bm 1 normal.png`` — Blender's importer wires ``map_Bump`` through a Normal
  Map node whose strength is the ``-bm`` value (Blender's exporter writes the node's
  strength there); without ``-bm`` the strength comes out 0 and the map does nothing.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facerefl.export.surface import SurfaceMesh
from facerefl.fsutil import atomic_write_text
from facerefl.render.brdf import DEFAULT_ROUGHNESS, F0_MAX


@dataclass(frozen=True)
class MtlTextures:
    """File names (relative to the MTL's folder) of the maps the material uses."""

    albedo: str = "albedo.png"
    specular: str = "specular.png"
    normal: str = "normal.png"


def _rows(prefix: str, arr: np.ndarray) -> str:
    buf = io.StringIO()
    np.savetxt(buf, arr, fmt="%.7g", delimiter=" ")
    return "".join(f"{prefix} {line}\n" for line in buf.getvalue().splitlines())


def obj_text(mesh: SurfaceMesh, mtl_name: str, material: str = "face_skin") -> str:
    """The OBJ document for ``mesh`` referencing ``mtl_name`` and material ``material``."""
    f = mesh.faces.astype(np.int64) + 1
    faces = "".join(f"f {a}/{a}/{a} {b}/{b}/{b} {c}/{c}/{c}\n" for a, b, c in f.tolist())
    return (
        "# facerefl face mesh: +y up, +z towards the viewer; vt v = 0 at the image bottom\n"
        f"mtllib {mtl_name}\n"
        + _rows("v", mesh.positions)
        + _rows("vt", mesh.uvs)
        + _rows("vn", mesh.normals)
        + f"usemtl {material}\n"
        + "s 1\n"
        + faces
    )


def mtl_text(
    textures: MtlTextures,
    material: str = "face_skin",
    roughness: float = DEFAULT_ROUGHNESS,
    specular_f0: float = F0_MAX,
) -> str:
    """The MTL document: diffuse ``Kd 1 * map_Kd`` and specular ``Ks specular_f0 * map_Ks``.

    ``specular_f0`` is the F0 a specular-map value of 1 stands for (the renderer's
    ``F0 = F0_MAX * t_r``), so ``Ks * map_Ks`` is the normal-incidence reflectance.
    """
    for name in (textures.albedo, textures.specular, textures.normal):
        if any(c.isspace() for c in name) or os.path.isabs(name):
            raise ValueError(f"texture file names must be relative and without spaces, got {name!r}")
    return (
        "# facerefl face material: map_Kd sRGB albedo, map_Ks linear specular intensity,\n"
        "# norm / map_Bump -bm 1: tangent-space normal map encoded (n + 1) / 2, green up\n"
        f"newmtl {material}\n"
        "Ka 0 0 0\n"
        "Kd 1 1 1\n"
        f"Ks {specular_f0:.6g} {specular_f0:.6g} {specular_f0:.6g}\n"
        "Ns 100\n"
        "d 1\n"
        "illum 2\n"
        f"Pr {roughness:.6g}\n"
        "Pm 0\n"
        f"map_Kd {textures.albedo}\n"
        f"map_Ks {textures.specular}\n"
        f"norm {textures.normal}\n"
        f"map_Bump -bm 1 {textures.normal}\n"
    )


def write_obj(
    obj_path: str | os.PathLike,
    mesh: SurfaceMesh,
    textures: MtlTextures = MtlTextures(),
    roughness: float = DEFAULT_ROUGHNESS,
    specular_f0: float = F0_MAX,
) -> tuple[Path, Path]:
    """Write ``obj_path`` and its MTL (same stem, ``.mtl``) atomically; return both paths."""
    obj_path = Path(obj_path)
    mtl_path = obj_path.with_suffix(".mtl")
    atomic_write_text(mtl_path, mtl_text(textures, roughness=roughness, specular_f0=specular_f0))
    atomic_write_text(obj_path, obj_text(mesh, mtl_path.name))
    return obj_path, mtl_path
