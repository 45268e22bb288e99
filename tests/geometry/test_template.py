"""Template conversion (on a fake npm package) and the real canonical mesh."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from facerefl.geometry import template as tpl


def _fake_package(root, rng, prefix=b"x" * 37, suffix=b"y" * 11):
    """A folder laid out like the npm package, with a random 468/898 canonical mesh."""
    from mediapipe.modules.face_geometry.protos import geometry_pipeline_metadata_pb2 as gpm

    verts = rng.normal(size=(468, 3))
    uv = rng.uniform(size=(468, 2))
    faces = rng.integers(0, 468, size=(898, 3))
    meta = gpm.GeometryPipelineMetadata()
    meta.canonical_mesh.vertex_buffer.extend(np.concatenate([verts, uv], 1).ravel().tolist())
    meta.canonical_mesh.index_buffer.extend(faces.ravel().tolist())
    blob = meta.SerializeToString()
    (root / "face_mesh_solution_packed_assets.data").write_bytes(prefix + blob + suffix)
    table = {"files": [
        {"filename": "/a/b/face_landmark.tflite", "start": 0, "end": len(prefix)},
        {"filename": "/m/geometry_pipeline_metadata_landmarks.binarypb",
         "start": len(prefix), "end": len(prefix) + len(blob)},
    ], "remote_package_size": 1}
    (root / "face_mesh_solution_packed_assets_loader.js").write_text(
        "var x = 1;\n loadPackage(" + json.dumps(table) + ");\n})();\n")
    return verts, uv, faces


def test_convert_reads_byte_range_and_flips_v(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir(), out.mkdir()
    verts, uv, faces = _fake_package(src, np.random.default_rng(0))
    tpl.convert_asset(src, out)
    t = tpl.template_from_npz(out / tpl.TEMPLATE_FILE)
    np.testing.assert_allclose(t.vertices.numpy(), verts, atol=1e-5)
    np.testing.assert_array_equal(t.faces.numpy(), faces)
    np.testing.assert_allclose(t.uvs[:, 0].numpy(), uv[:, 0], atol=1e-6)
    np.testing.assert_allclose(t.uvs[:, 1].numpy(), 1.0 - uv[:, 1], atol=1e-6)
    assert [r.name for r in t.regions] == list(tpl.REGION_NAMES)


def test_convert_rejects_wrong_sizes(tmp_path):
    from mediapipe.modules.face_geometry.protos import geometry_pipeline_metadata_pb2 as gpm

    meta = gpm.GeometryPipelineMetadata()
    meta.canonical_mesh.vertex_buffer.extend([0.0] * 50)
    blob = meta.SerializeToString()
    (tmp_path / "face_mesh_solution_packed_assets.data").write_bytes(blob)
    table = {"files": [{"filename": "/geometry_pipeline_metadata_landmarks.binarypb",
                        "start": 0, "end": len(blob)}]}
    (tmp_path / "face_mesh_solution_packed_assets_loader.js").write_text(
        f"loadPackage({json.dumps(table)})")
    with pytest.raises(ValueError, match="expected 468"):
        tpl.convert_asset(tmp_path, tmp_path)


def test_real_template_shapes_and_orientation(template):
    t = template
    assert t.vertices.shape == (468, 3) and t.vertices.dtype == torch.float32
    assert t.faces.shape == (898, 3) and t.faces.dtype == torch.int64
    assert t.uvs.shape == (468, 2)
    assert float(t.uvs.min()) >= 0.0 and float(t.uvs.max()) <= 1.0
    # v = 0 at the bottom: forehead (landmark 10) above the chin (152) in UV too.
    assert t.uvs[10, 1] > 0.8 and t.uvs[152, 1] < 0.1
    # u grows with x: subject's left eye corner (263) right of the right one (33).
    assert t.vertices[263, 0] > 0 > t.vertices[33, 0] and t.uvs[263, 0] > t.uvs[33, 0]
    # Counter-clockwise from the front: most face normals point out of the face (+z).
    v = t.vertices[t.faces]
    n = torch.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0], dim=-1)
    assert (n[:, 2] > 0).float().mean() > 0.95
    # and counter-clockwise in UV (v up) for every triangle: the UV map is not folded.
    uv = t.uvs[t.faces]
    a, b = uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]
    assert bool(((a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]) > 0).all())


def test_regions_lie_where_expected(template):
    t = template
    y = t.vertices[:, 1]
    x = t.vertices[:, 0]
    mean_y = {r.name: float(y[list(r.indices)].mean()) for r in t.regions}
    assert mean_y["forehead"] > mean_y["left_brow"] > mean_y["left_eye"] > mean_y["nose"]
    assert mean_y["nose"] > mean_y["lips_outer"]
    assert float(x[list(t.region("left_cheek").indices)].min()) > 0
    assert float(x[list(t.region("right_eye").indices)].max()) < 0
    assert len(t.region("face_oval").indices) == 36 and t.region("face_oval").loop
    with pytest.raises(KeyError, match="known"):
        t.region("ears")


def test_skin_mask_excludes_eyes_and_mouth(template):
    size = 256
    skin = tpl.skin_uv_mask(template, size)
    cover = tpl.uv_coverage_mask(template, size)
    assert 0.45 < skin.mean() < cover.mean() <= 0.7
    assert not (skin & ~cover).any()
    for name in ("left_eye", "right_eye", "left_brow"):
        region = tpl.region_uv_mask(template, template.region(name), size)
        assert region.sum() > 20 and not (skin & region).any()
    cheek = tpl.region_uv_mask(template, template.region("left_cheek"), size)
    assert (skin & cheek).sum() > 0.95 * cheek.sum()
    # Cached default equals the explicit template version.
    np.testing.assert_array_equal(tpl.skin_uv_mask(None, size), skin)


def test_eyes_coverage_is_the_eye_regions_area_fraction(template):
    size = 64
    cover = tpl.eyes_uv_coverage(size)
    assert cover.shape == (size, size) and cover.dtype == np.float32
    assert 0.0 <= cover.min() and cover.max() <= 1.0
    fine = (tpl.region_uv_mask(template, template.region("left_eye"), size * 4)
            | tpl.region_uv_mask(template, template.region("right_eye"), size * 4))
    # the area-average keeps the eyes' total area
    assert abs(cover.sum() - fine.sum() / 16) < 1e-3 * fine.sum()
    # full texels lie in the eyes, and the eyes never overlap the valid skin
    assert (cover == 1).sum() > 4
    assert not (tpl.skin_uv_mask(None, size) & (cover > 0)).any()
