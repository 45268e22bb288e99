from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from facerefl.export.gltf import PbrTextures, glb_bytes, parse_glb, write_glb
from facerefl.export.surface import to_asset_frame, vertex_tangents
from facerefl.render.brdf import F0_MAX
from facerefl.render.color import linear_to_srgb

_SIZES = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}


@pytest.fixture
def glb(tmp_path, sphere, maps_tensors):
    albedo, specular, normal = maps_tensors
    mesh = to_asset_frame(sphere, metres_per_unit=0.01)
    path = write_glb(tmp_path / "face.glb", mesh, PbrTextures(albedo, specular, normal, roughness=0.4))
    return path, mesh, maps_tensors


def test_glb_structure(glb):
    path, mesh, _ = glb
    doc, blob = parse_glb(path.read_bytes())
    assert doc["asset"]["version"] == "2.0"
    assert len(blob) == doc["buffers"][0]["byteLength"]
    for view in doc["bufferViews"]:
        assert view["byteOffset"] % 4 == 0
        assert view["byteOffset"] + view["byteLength"] <= len(blob)
    prim = doc["meshes"][0]["primitives"][0]
    nv, nf = mesh.positions.shape[0], mesh.faces.shape[0]
    for name, acc_id in {**prim["attributes"], "indices": prim["indices"]}.items():
        acc = doc["accessors"][acc_id]
        view = doc["bufferViews"][acc["bufferView"]]
        assert acc["count"] * _SIZES[acc["type"]] * 4 == view["byteLength"], name
        assert acc["count"] == (3 * nf if name == "indices" else nv), name
    pos = doc["accessors"][prim["attributes"]["POSITION"]]
    np.testing.assert_allclose(pos["min"], mesh.positions.min(0), rtol=1e-6)
    np.testing.assert_allclose(pos["max"], mesh.positions.max(0), rtol=1e-6)
    assert doc["accessors"][prim["attributes"]["TANGENT"]]["type"] == "VEC4"
    mat = doc["materials"][0]
    spec = mat["extensions"]["KHR_materials_specular"]
    # F0 = 0.04 * specularColorFactor * t_r must equal the renderer's F0_MAX * t_r
    assert spec["specularColorFactor"] == pytest.approx([F0_MAX / 0.04] * 3)
    assert "KHR_materials_specular" in doc["extensionsUsed"]
    assert "extensionsRequired" not in doc
    assert mat["pbrMetallicRoughness"]["roughnessFactor"] == pytest.approx(0.4)
    assert {im["mimeType"] for im in doc["images"]} == {"image/png"}


def test_glb_tangents_and_uv_flip(glb):
    path, mesh, _ = glb
    doc, blob = parse_glb(path.read_bytes())
    prim = doc["meshes"][0]["primitives"][0]

    def read(name, width):
        acc = doc["accessors"][prim["attributes"][name]]
        view = doc["bufferViews"][acc["bufferView"]]
        raw = blob[view["byteOffset"] : view["byteOffset"] + view["byteLength"]]
        return np.frombuffer(raw, np.float32).reshape(-1, width)

    uv = read("TEXCOORD_0", 2)
    np.testing.assert_allclose(uv[:, 1], 1.0 - mesh.uvs[:, 1], atol=1e-7)
    tan = read("TANGENT", 4)
    assert set(np.unique(tan[:, 3])) <= {-1.0, 1.0}
    np.testing.assert_allclose(np.linalg.norm(tan[:, :3], axis=1), 1.0, atol=1e-5)
    assert np.abs(np.sum(tan[:, :3] * mesh.normals, axis=1)).max() < 1e-5
    # sphere: u grows eastwards, so on the +z side the tangent points +x, handedness +1
    front = np.argmax(mesh.normals[:, 2])
    assert tan[front, 0] > 0.99 and tan[front, 3] == 1.0
    # a glTF loader's bitangent w * cross(N, T) points up (+y), along dP/dv: green-up maps
    bitangent = tan[front, 3] * np.cross(mesh.normals[front], tan[front, :3])
    assert bitangent[1] > 0.99


def test_tangents_flip_handedness_for_mirrored_uvs(sphere):
    flipped_u = np.stack([1 - sphere.uvs[:, 0], sphere.uvs[:, 1]], 1)
    mirrored = type(sphere)(sphere.positions, sphere.faces, flipped_u, sphere.normals)
    assert (vertex_tangents(mirrored)[:, 3] == -1.0).mean() > 0.9


def test_glb_loads_in_trimesh_with_textures(glb):
    path, mesh, (albedo, _, normal) = glb
    scene = trimesh.load(path)
    geom = next(iter(scene.geometry.values()))
    assert geom.vertices.shape[0] == mesh.positions.shape[0]
    assert geom.faces.shape[0] == mesh.faces.shape[0]
    # trimesh undoes glTF's v flip, recovering the project's UVs
    np.testing.assert_allclose(geom.visual.uv, mesh.uvs, atol=1e-6)
    mat = geom.visual.material
    assert isinstance(mat, trimesh.visual.material.PBRMaterial)
    base = np.asarray(mat.baseColorTexture.convert("RGB"))
    expected = (linear_to_srgb(albedo).permute(1, 2, 0).numpy() * 255).round()
    assert base.shape == (32, 48, 3) and np.abs(base - expected).max() <= 1
    nmap = np.asarray(mat.normalTexture.convert("RGB")) / 255.0 * 2 - 1
    assert np.abs(nmap - normal.permute(1, 2, 0).numpy()).max() < 0.01
    assert mat.metallicFactor == 0.0


def test_glb_occlusion_texture_is_optional(sphere, maps_tensors):
    albedo, specular, normal = maps_tensors
    doc, _ = parse_glb(glb_bytes(sphere, PbrTextures(albedo, specular, normal)))
    assert "occlusionTexture" not in doc["materials"][0] and len(doc["images"]) == 3
    ao = torch.linspace(0, 1, 32 * 48).reshape(1, 32, 48)
    data = glb_bytes(sphere, PbrTextures(albedo, specular, normal, occlusion=ao))
    doc, _ = parse_glb(data)
    assert doc["materials"][0]["occlusionTexture"]["index"] == 3 and len(doc["images"]) == 4
    mat = next(iter(trimesh.load(io.BytesIO(data), file_type="glb").geometry.values())).visual.material
    occ = np.asarray(mat.occlusionTexture.convert("RGB"))[..., 0] / 255.0
    assert np.abs(occ - ao[0].numpy()).max() <= 0.5 / 255 + 1e-6  # linear, not sRGB


def test_glb_rejects_bad_material(sphere, maps_tensors):
    albedo, specular, normal = maps_tensors
    with pytest.raises(ValueError, match="roughness"):
        glb_bytes(sphere, PbrTextures(albedo, specular, normal, roughness=1.5))
    with pytest.raises(ValueError, match="GLB"):
        parse_glb(b"not a glb file at all")


def test_specular_texture_is_srgb_encoded_t_r(glb):
    path, _, (_, specular, _) = glb
    doc, blob = parse_glb(path.read_bytes())
    tex = doc["materials"][0]["extensions"]["KHR_materials_specular"]["specularColorTexture"]["index"]
    view = doc["bufferViews"][doc["images"][doc["textures"][tex]["source"]]["bufferView"]]
    img = np.asarray(Image.open(io.BytesIO(blob[view["byteOffset"] : view["byteOffset"] + view["byteLength"]])))
    expected = (linear_to_srgb(specular[0]).numpy() * 255).round()
    assert np.abs(img[..., 0].astype(float) - expected).max() <= 1
    assert torch.all(torch.tensor(img[..., 0] == img[..., 2]))
