"""Binary glTF 2.0 (``.glb``) writer for the textured face with a PBR material.

The file holds one mesh primitive (POSITION, NORMAL, TANGENT, TEXCOORD_0, uint32
indices), one metallic-roughness material and three embedded PNG textures:

* ``baseColorTexture``: albedo, sRGB-encoded 8-bit (glTF base colour is sRGB);
* ``normalTexture``: tangent-space normals encoded ``(n + 1) / 2``, linear 8-bit,
  +X along the texture's u, +Y up in the image (glTF convention = project convention);
* ``KHR_materials_specular.specularColorTexture``: the specular intensity t_r as a grey,
  sRGB-encoded 8-bit image. glTF's dielectric F0 is
  ``min(0.04 * specularColorFactor * specularColorTexture, 1) * specularFactor`` (IOR 1.5),
  so ``specularColorFactor = f0_per_unit / 0.04`` makes F0 equal ``f0_per_unit * t_r``,
  the renderer's ``F0 = F0_MAX * t_r`` (:mod:`facerefl.render.brdf`), while the grazing
  reflectance stays 1 (the renderer's f90 is also 1 wherever t_r >= 0.25). The extension
  is listed in ``extensionsUsed`` only (loaders that do not know it still load the asset,
  with the default 4% specular).
* ``roughnessFactor``: the renderer's global perceptual roughness; glTF, like the
  renderer, squares it to get the GGX width.
* ``occlusionTexture`` (optional): the baked ambient occlusion, linear 8-bit grey.

Coordinates: glTF is right-handed, +Y up, metres, front facing +Z; pass a mesh from
:func:`facerefl.export.surface.to_asset_frame`. glTF puts v = 0 at the top of an image,
the project at the bottom, so TEXCOORD_0 stores ``(u, 1 - v)`` and the images are written
with row 0 at the top, unchanged.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facerefl.export.images import image_png_bytes
from facerefl.export.surface import SurfaceMesh, vertex_tangents
from facerefl.fsutil import atomic_write_bytes
from facerefl.render.brdf import DEFAULT_ROUGHNESS, F0_MAX

GLB_MAGIC = 0x46546C67  # "glTF"
CHUNK_JSON = 0x4E4F534A  # "JSON"
CHUNK_BIN = 0x004E4942  # "BIN\0"
_FLOAT, _UINT32 = 5126, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_LINEAR, _LINEAR_MIPMAP_LINEAR, _CLAMP = 9729, 9987, 33071
DIELECTRIC_F0 = 0.04  # ((1.5 - 1) / (1.5 + 1))^2, glTF's default IOR


@dataclass(frozen=True)
class PbrTextures:
    """UV-space reflectance maps for the material (row 0 = top of the texture image).

    Attributes:
        albedo: ``[3, H, W]`` linear RGB in [0, 1].
        specular: ``[1, H, W]`` specular intensity t_r (Fresnel F0 in units of
            ``f0_per_unit``) in [0, 1].
        normal: ``[3, H, W]`` tangent-space unit normals in [-1, 1].
        roughness: scalar perceptual roughness in [0, 1] (glTF ``roughnessFactor``).
        f0_per_unit: F0 that a specular value of 1 stands for (the renderer's ``F0_MAX``).
        occlusion: ``[1, H, W]`` ambient occlusion in [0, 1] (1 = unoccluded), or None.
    """

    albedo: torch.Tensor
    specular: torch.Tensor
    normal: torch.Tensor
    roughness: float = DEFAULT_ROUGHNESS
    f0_per_unit: float = F0_MAX
    occlusion: torch.Tensor | None = None


def encode_normal(normal: torch.Tensor) -> torch.Tensor:
    """Tangent-space normals ``[3, H, W]`` in [-1, 1] -> ``(n / |n| + 1) / 2`` in [0, 1]."""
    n = normal.detach().float()
    return (n / n.norm(dim=0, keepdim=True).clamp_min(1e-8) + 1.0) * 0.5


def _pad4(data: bytes, fill: bytes) -> bytes:
    return data + fill * (-len(data) % 4)


class _BinBuilder:
    """Accumulates bufferViews/accessors into one 4-byte-aligned binary chunk."""

    def __init__(self) -> None:
        self.blob = bytearray()
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def view(self, data: bytes, target: int | None = None) -> int:
        offset = len(self.blob)
        self.blob += _pad4(data, b"\0")
        view = {"buffer": 0, "byteOffset": offset, "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        self.views.append(view)
        return len(self.views) - 1

    def accessor(self, arr: np.ndarray, kind: str, target: int, bounds: bool = False) -> int:
        comp = _UINT32 if arr.dtype == np.uint32 else _FLOAT
        acc = {
            "bufferView": self.view(arr.tobytes(), target),
            "componentType": comp,
            "count": int(arr.shape[0]),
            "type": kind,
        }
        if bounds:
            acc["min"] = [float(v) for v in arr.min(axis=0)]
            acc["max"] = [float(v) for v in arr.max(axis=0)]
        self.accessors.append(acc)
        return len(self.accessors) - 1


def glb_bytes(
    mesh: SurfaceMesh, textures: PbrTextures, name: str = "face", extras: dict | None = None
) -> bytes:
    """Encode ``mesh`` (asset frame, metres) with ``textures`` as a glTF 2.0 binary.

    ``extras`` (JSON-serialisable) is stored on the node, e.g. where the asset sat in the
    camera frame.
    """
    if not 0.0 <= textures.roughness <= 1.0:
        raise ValueError(f"roughness must be in [0, 1], got {textures.roughness}")
    if not textures.f0_per_unit > 0:
        raise ValueError(f"f0_per_unit must be positive, got {textures.f0_per_unit}")
    b = _BinBuilder()
    pos = np.ascontiguousarray(mesh.positions, np.float32)
    uv = np.stack([mesh.uvs[:, 0], 1.0 - mesh.uvs[:, 1]], axis=1).astype(np.float32)
    attributes = {
        "POSITION": b.accessor(pos, "VEC3", _ARRAY_BUFFER, bounds=True),
        "NORMAL": b.accessor(np.ascontiguousarray(mesh.normals, np.float32), "VEC3", _ARRAY_BUFFER),
        "TANGENT": b.accessor(vertex_tangents(mesh), "VEC4", _ARRAY_BUFFER),
        "TEXCOORD_0": b.accessor(uv, "VEC2", _ARRAY_BUFFER),
    }
    indices = b.accessor(mesh.faces.astype(np.uint32).reshape(-1), "SCALAR", _ELEMENT_ARRAY_BUFFER)

    pngs = [
        image_png_bytes(textures.albedo, srgb_encode=True),
        image_png_bytes(encode_normal(textures.normal)),
        image_png_bytes(textures.specular.detach().float().expand(3, -1, -1), srgb_encode=True),
    ]
    if textures.occlusion is not None:
        pngs.append(image_png_bytes(textures.occlusion.detach().float().expand(3, -1, -1)))
    images = [{"bufferView": b.view(png), "mimeType": "image/png"} for png in pngs]
    scale = textures.f0_per_unit / DIELECTRIC_F0
    material = {
        "name": f"{name}_skin",
        "pbrMetallicRoughness": {
            "baseColorTexture": {"index": 0, "texCoord": 0},
            "metallicFactor": 0.0,
            "roughnessFactor": float(textures.roughness),
        },
        "normalTexture": {"index": 1, "texCoord": 0, "scale": 1.0},
        **({"occlusionTexture": {"index": 3, "texCoord": 0, "strength": 1.0}} if len(pngs) > 3 else {}),
        "extensions": {
            "KHR_materials_specular": {
                "specularFactor": 1.0,
                "specularColorFactor": [scale, scale, scale],
                "specularColorTexture": {"index": 2, "texCoord": 0},
            }
        },
    }
    doc = {
        "asset": {"version": "2.0", "generator": "facerefl.export.gltf"},
        "extensionsUsed": ["KHR_materials_specular"],
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": name, **({"extras": extras} if extras else {})}],
        "meshes": [{"name": name, "primitives": [
            {"attributes": attributes, "indices": indices, "material": 0, "mode": 4}
        ]}],
        "materials": [material],
        "samplers": [{"magFilter": _LINEAR, "minFilter": _LINEAR_MIPMAP_LINEAR, "wrapS": _CLAMP, "wrapT": _CLAMP}],
        "images": images,
        "textures": [{"sampler": 0, "source": i} for i in range(len(images))],
        "accessors": b.accessors,
        "bufferViews": b.views,
        "buffers": [{"byteLength": len(b.blob)}],
    }
    json_chunk = _pad4(json.dumps(doc, separators=(",", ":")).encode("utf-8"), b" ")
    bin_chunk = bytes(b.blob)
    total = 12 + 8 + len(json_chunk) + 8 + len(bin_chunk)
    return b"".join([
        struct.pack("<III", GLB_MAGIC, 2, total),
        struct.pack("<II", len(json_chunk), CHUNK_JSON), json_chunk,
        struct.pack("<II", len(bin_chunk), CHUNK_BIN), bin_chunk,
    ])


def parse_glb(data: bytes) -> tuple[dict, bytes]:
    """Split a ``.glb`` into its JSON document and binary chunk (for checks and tests).

    Raises:
        ValueError: the header, version, length or chunk layout is wrong.
    """
    if len(data) < 20:
        raise ValueError("file too short to be a GLB")
    magic, version, length = struct.unpack_from("<III", data, 0)
    if magic != GLB_MAGIC or version != 2 or length != len(data):
        raise ValueError(f"bad GLB header (magic {magic:#x}, version {version}, length {length} vs {len(data)})")
    jlen, jtype = struct.unpack_from("<II", data, 12)
    if jtype != CHUNK_JSON or jlen % 4:
        raise ValueError("first GLB chunk must be 4-byte aligned JSON")
    doc = json.loads(data[20 : 20 + jlen].decode("utf-8"))
    off = 20 + jlen
    if off == len(data):
        return doc, b""
    blen, btype = struct.unpack_from("<II", data, off)
    if btype != CHUNK_BIN or off + 8 + blen != len(data):
        raise ValueError("second GLB chunk must be BIN and end the file")
    return doc, data[off + 8 : off + 8 + blen]


def write_glb(
    path: str | os.PathLike, mesh: SurfaceMesh, textures: PbrTextures, name: str = "face",
    extras: dict | None = None,
) -> Path:
    """Write the textured mesh to ``path`` (``.glb``) atomically; see :func:`glb_bytes`."""
    return atomic_write_bytes(path, glb_bytes(mesh, textures, name=name, extras=extras))
