from __future__ import annotations

import numpy as np
import pytest
import trimesh

from facerefl.export.maps import save_reflectance_maps
from facerefl.export.obj import MtlTextures, mtl_text, write_obj
from facerefl.render.maps import ReflectanceMaps


def test_obj_mtl_load_in_trimesh_with_texture(tmp_path, sphere, maps_tensors):
    save_reflectance_maps(tmp_path, ReflectanceMaps(*maps_tensors), exr=False)
    obj, mtl = write_obj(tmp_path / "face.obj", sphere, roughness=0.45)
    text = mtl.read_text()
    assert "map_Kd albedo.png" in text and "norm normal.png" in text and "Pr 0.45" in text
    assert obj.read_text().splitlines()[1] == "mtllib face.mtl"
    loaded = trimesh.load(obj, process=False)
    assert loaded.vertices.shape == sphere.positions.shape
    assert loaded.faces.shape == sphere.faces.shape
    np.testing.assert_allclose(loaded.vertices, sphere.positions, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(loaded.visual.uv, sphere.uvs, atol=1e-6)  # OBJ keeps v up
    image = loaded.visual.material.image
    assert image is not None and image.size == (48, 32)


def test_mtl_rejects_unsafe_texture_names():
    with pytest.raises(ValueError, match="relative"):
        mtl_text(MtlTextures(albedo="/abs/albedo.png"))
    with pytest.raises(ValueError, match="spaces"):
        mtl_text(MtlTextures(normal="my normal.png"))
