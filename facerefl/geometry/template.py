"""mediapipe's canonical face mesh: topology, UVs and named landmark regions.

The template is the 468-vertex canonical face model that mediapipe's face mesh is built
on; vertex ``i`` is landmark ``i`` of the face mesh (the 10 iris landmarks 468–477 have no
vertex). It is not in the Python wheel, so :func:`convert_asset` extracts it at set-up
from the npm package ``@mediapipe/face_mesh`` (see ``facerefl.assets``), where it is the
file ``geometry_pipeline_metadata_landmarks.binarypb`` packed inside
``face_mesh_solution_packed_assets.data`` at the byte range listed by
``face_mesh_solution_packed_assets_loader.js``.

Frames and units of the stored template (the "template frame"):

* vertices in centimetres, +x to the subject's left (image right in a photo), +y up,
  +z out of the face (the nose tip has the largest z); faces are counter-clockwise seen
  from the front, so face normals point out of the face;
* UVs follow ``docs/conventions.md`` (v = 0 at the *bottom* of the texture). mediapipe's
  own texture coordinates run the other way (its v grows downwards: the forehead has
  small v, the chin large v), so the converter stores ``v = 1 − v_mediapipe``.

Regions are named index groups into the 468 template vertices; "left"/"right" are the
*subject's* (mediapipe's naming), so the left eye appears on the right of a photo.

Example:
    >>> t = load_template()  # the fetched asset (make setup)
    >>> t.vertices.shape, t.faces.shape, t.uvs.shape
    (torch.Size([468, 3]), torch.Size([898, 3]), torch.Size([468, 2]))
    >>> region_uv_mask(t, t.region("left_eye"), 256).shape
    (256, 256)
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from facerefl import assets

__all__ = [
    "NUM_VERTICES",
    "NUM_FACES",
    "NUM_LANDMARKS",
    "ASSET",
    "TEMPLATE_FILE",
    "REGION_NAMES",
    "Region",
    "Template",
    "convert_asset",
    "eyes_uv_coverage",
    "load_template",
    "region_uv_mask",
    "skin_uv_mask",
    "uv_coverage_mask",
]

NUM_VERTICES = 468
NUM_FACES = 898
#: landmarks per face with ``refine_landmarks=True`` (468 mesh points + 2 × 5 iris points).
NUM_LANDMARKS = 478
ASSET = "face_mesh"
TEMPLATE_FILE = "canonical_face.npz"
_PACKED_NAME = "geometry_pipeline_metadata_landmarks.binarypb"

#: Regions stored in the template file. Loops are ordered closed contours; the others
#: are unordered vertex sets.
REGION_NAMES = (
    "face_oval", "lips_outer", "lips_inner", "left_eye", "right_eye", "left_brow",
    "right_brow", "nose", "left_cheek", "right_cheek", "forehead",
)
_LOOP_REGIONS = ("face_oval", "lips_outer", "lips_inner", "left_eye", "right_eye",
                 "left_brow", "right_brow")


@dataclass(frozen=True)
class Region:
    """A named group of template vertices.

    Attributes:
        name: one of :data:`REGION_NAMES`.
        indices: int64 vertex indices into the template (``[K]``).
        loop: True when ``indices`` is an ordered closed contour (the region is the
            polygon it bounds); False for an unordered vertex set (the region is the
            union of template triangles whose three vertices are all in the set).
    """

    name: str
    indices: tuple[int, ...]
    loop: bool


@dataclass(frozen=True)
class Template:
    """The canonical face mesh.

    Attributes:
        vertices: ``[468, 3]`` float32, template frame (cm; +x subject's left, +y up,
            +z out of the face).
        faces: ``[898, 3]`` int64, counter-clockwise seen from the front.
        uvs: ``[468, 2]`` float32 in [0, 1], v = 0 at the bottom (docs/conventions.md).
        regions: the named vertex groups, in the order of :data:`REGION_NAMES`.
    """

    vertices: torch.Tensor
    faces: torch.Tensor
    uvs: torch.Tensor
    regions: tuple[Region, ...]

    def region(self, name: str) -> Region:
        """The region called ``name``; raises KeyError listing the known names."""
        for r in self.regions:
            if r.name == name:
                return r
        raise KeyError(f"unknown region {name!r}; known: {[r.name for r in self.regions]}")


# ----------------------------------------------------------------------------- convert


def _packed_range(loader_js: str, filename: str) -> tuple[int, int]:
    """Byte range ``[start, end)`` of ``filename`` in the packed-assets ``.data`` file."""
    m = re.search(r"loadPackage\((\{.*?\})\)", loader_js, flags=re.S)
    if m is None:
        raise ValueError("no loadPackage({...}) file table in the packed-assets loader")
    table = json.loads(m.group(1))
    for entry in table["files"]:
        if entry["filename"].endswith("/" + filename):
            return int(entry["start"]), int(entry["end"])
    raise ValueError(f"{filename} is not listed in the packed-assets loader")


def _edge_paths(edges: frozenset[tuple[int, int]]) -> list[list[int]]:
    """Chain an undirected edge set (disjoint simple paths or cycles) into vertex paths.

    A cycle comes back with its first vertex repeated at the end.
    """
    adj: dict[int, list[int]] = {}
    for a, b in edges:
        adj.setdefault(a, []).append(b)
        adj.setdefault(b, []).append(a)
    if any(len(n) > 2 for n in adj.values()):
        raise ValueError("edge set is not a union of simple paths")
    seen: set[int] = set()
    paths = []
    # Open paths start at their ends (degree 1); what is left are cycles.
    starts = sorted(v for v, n in adj.items() if len(n) == 1) + sorted(adj)
    for s in starts:
        if s in seen:
            continue
        path, prev, cur = [s], None, s
        seen.add(s)
        while True:
            nxt = [n for n in adj[cur] if n != prev]
            if not nxt:
                break
            if nxt[0] == path[0]:
                path.append(path[0])
                break
            prev, cur = cur, nxt[0]
            if cur in seen:
                break
            path.append(cur)
            seen.add(cur)
        paths.append(path)
    return paths


def _loop(edges) -> list[int]:
    """The single closed contour of an edge set (without the repeated first vertex)."""
    paths = [p for p in _edge_paths(edges) if p[0] == p[-1]]
    if len(paths) != 1:
        raise ValueError(f"expected one closed contour, got {len(paths)}")
    return paths[0][:-1]


def _band_loop(edges, uvs: np.ndarray) -> list[int]:
    """Close two open polylines (upper and lower edge of a brow) into one contour."""
    a, b = _edge_paths(edges)
    # Join so that the ends that are nearest in UV meet.
    if np.linalg.norm(uvs[a[-1]] - uvs[b[0]]) > np.linalg.norm(uvs[a[-1]] - uvs[b[-1]]):
        b = b[::-1]
    return a + b


def _lips_loops(edges, uvs: np.ndarray) -> tuple[list[int], list[int]]:
    """Outer and inner lip contours (the one enclosing the larger UV area is outer)."""
    loops = [p[:-1] for p in _edge_paths(edges) if p[0] == p[-1]]
    if len(loops) != 2:
        raise ValueError(f"expected two lip contours, got {len(loops)}")
    area = [abs(cv2.contourArea(uvs[np.array(p)].astype(np.float32))) for p in loops]
    outer, inner = (loops[0], loops[1]) if area[0] > area[1] else (loops[1], loops[0])
    return outer, inner


def _geometric_regions(verts: np.ndarray, loops: dict[str, list[int]],
                       nose_edges) -> dict[str, list[int]]:
    """Nose, cheeks and forehead as vertex sets chosen by position in the template frame.

    * nose: within the x half-width and y extent of mediapipe's nose contour lines;
    * forehead: above the brows' median height (so from their upper edge), between
      their outer ends;
    * cheeks: beside the nose and below the eyes, down to the mouth corners, outside
      the nose half-width, away from the eyes and lips.
    """
    x, y = verts[:, 0], verts[:, 1]
    nose_ids = sorted({i for e in nose_edges for i in e})
    half_w = np.abs(x[nose_ids]).max()
    ny0, ny1 = y[nose_ids].min(), y[nose_ids].max()
    nose = np.nonzero((np.abs(x) <= half_w) & (y >= ny0) & (y <= ny1))[0]
    brows = loops["left_brow"] + loops["right_brow"]
    # Everything above the brows' upper edge, between their outer ends.
    brow_mid = np.median(y[brows])
    forehead = np.nonzero((y > brow_mid) & (np.abs(x) <= np.abs(x[brows]).max()))[0]
    lips = loops["lips_outer"]
    mouth_y = y[lips].max()  # top of the upper lip
    regions = {"nose": nose.tolist(), "forehead": forehead.tolist()}
    for side, sign in (("left", 1.0), ("right", -1.0)):
        eye_bottom = y[loops[f"{side}_eye"]].min()
        sel = (sign * x > half_w) & (y < eye_bottom - 0.3) & (y > y[lips].min())
        # Keep away from the lips: lateral to the mouth corners or above the upper lip.
        corner_x = np.abs(x[lips]).max()
        sel &= (sign * x > corner_x) | (y > mouth_y)
        regions[f"{side}_cheek"] = np.nonzero(sel)[0].tolist()
    return regions


def _regions_from_mediapipe(verts: np.ndarray, uvs: np.ndarray) -> dict[str, list[int]]:
    """All :data:`REGION_NAMES` from mediapipe's landmark connection sets."""
    from mediapipe.python.solutions import face_mesh_connections as fc  # noqa: PLC0415

    loops = {
        "face_oval": _loop(fc.FACEMESH_FACE_OVAL),
        "left_eye": _loop(fc.FACEMESH_LEFT_EYE),
        "right_eye": _loop(fc.FACEMESH_RIGHT_EYE),
        "left_brow": _band_loop(fc.FACEMESH_LEFT_EYEBROW, uvs),
        "right_brow": _band_loop(fc.FACEMESH_RIGHT_EYEBROW, uvs),
    }
    loops["lips_outer"], loops["lips_inner"] = _lips_loops(fc.FACEMESH_LIPS, uvs)
    loops.update(_geometric_regions(verts, loops, fc.FACEMESH_NOSE))
    return loops


def _parse_canonical_mesh(blob: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parse the GeometryPipelineMetadata proto → (vertices, faces, uvs mediapipe-v)."""
    from mediapipe.modules.face_geometry.protos import (  # noqa: PLC0415
        geometry_pipeline_metadata_pb2 as gpm,
    )

    meta = gpm.GeometryPipelineMetadata()
    meta.ParseFromString(blob)
    mesh = meta.canonical_mesh
    # vertex_type 0 is VERTEX_PT: x, y, z, u, v per vertex; primitive_type 0 is TRIANGLE.
    if mesh.vertex_type != 0 or mesh.primitive_type != 0:
        raise ValueError(f"unexpected canonical mesh layout ({mesh.vertex_type}, {mesh.primitive_type})")
    vb = np.asarray(mesh.vertex_buffer, dtype=np.float64)
    ib = np.asarray(mesh.index_buffer, dtype=np.int64)
    if vb.size != 5 * NUM_VERTICES or ib.size != 3 * NUM_FACES:
        raise ValueError(f"canonical mesh has {vb.size // 5} vertices and {ib.size // 3} "
                         f"triangles; expected {NUM_VERTICES} and {NUM_FACES}")
    vb = vb.reshape(NUM_VERTICES, 5)
    return vb[:, :3], ib.reshape(NUM_FACES, 3), vb[:, 3:]


def convert_asset(src: Path, out: Path) -> None:
    """Asset converter: npm package root ``src`` → ``out/canonical_face.npz``.

    The npz holds ``vertices [468, 3]`` float32 (cm, template frame), ``faces [898, 3]``
    int64, ``uvs [468, 2]`` float32 (v = 0 at the bottom, flipped from mediapipe) and one
    int64 array ``region_<name>`` per entry of :data:`REGION_NAMES`.
    """
    src, out = Path(src), Path(out)
    loader = (src / "face_mesh_solution_packed_assets_loader.js").read_text(encoding="utf-8")
    start, end = _packed_range(loader, _PACKED_NAME)
    with open(src / "face_mesh_solution_packed_assets.data", "rb") as f:
        f.seek(start)
        blob = f.read(end - start)
    if len(blob) != end - start:
        raise ValueError("face_mesh_solution_packed_assets.data is shorter than its file table")
    verts, faces, uv_mp = _parse_canonical_mesh(blob)
    uvs = np.stack([uv_mp[:, 0], 1.0 - uv_mp[:, 1]], axis=1)
    regions = _regions_from_mediapipe(verts, uvs)
    arrays = {
        "vertices": verts.astype(np.float32),
        "faces": faces,
        "uvs": uvs.astype(np.float32),
        **{f"region_{k}": np.asarray(v, dtype=np.int64) for k, v in regions.items()},
    }
    tmp = out / (TEMPLATE_FILE + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(out / TEMPLATE_FILE)


# -------------------------------------------------------------------------------- load


def template_from_npz(path: Path) -> Template:
    """Read a converted template file (no pickle)."""
    with np.load(path, allow_pickle=False) as z:
        regions = tuple(
            Region(n, tuple(int(i) for i in z[f"region_{n}"]), n in _LOOP_REGIONS)
            for n in REGION_NAMES
        )
        return Template(
            vertices=torch.from_numpy(z["vertices"].astype(np.float32)),
            faces=torch.from_numpy(z["faces"].astype(np.int64)),
            uvs=torch.from_numpy(z["uvs"].astype(np.float32)),
            regions=regions,
        )


@functools.lru_cache(maxsize=1)
def load_template() -> Template:
    """The canonical face mesh from the asset cache (cached per process).

    Raises:
        facerefl.assets.AssetMissingError: the asset is not fetched; the message names
            the command that fetches it (``make setup``).
    """
    return template_from_npz(assets.asset_path(ASSET, TEMPLATE_FILE))


# ---------------------------------------------------------------------------- UV masks


def _uv_to_pixels(uvs: np.ndarray, size: int) -> np.ndarray:
    """UV ``[N, 2]`` → texel-grid coordinates (x right, y down) with centres at +0.5."""
    return np.stack([uvs[:, 0] * size, (1.0 - uvs[:, 1]) * size], axis=1)


def _fill_polygons(polys: list[np.ndarray], size: int) -> np.ndarray:
    """Rasterize pixel-space polygons into a ``[size, size]`` bool mask (sub-pixel exact)."""
    shift = 4  # cv2 fixed point: coordinates × 16
    img = np.zeros((size, size), np.uint8)
    pts = [np.round((p - 0.5) * (1 << shift)).astype(np.int32) for p in polys]
    cv2.fillPoly(img, pts, 1, lineType=cv2.LINE_8, shift=shift)
    return img.astype(bool)


def region_uv_mask(template: Template, region: Region, size: int) -> np.ndarray:
    """Texels of a ``size × size`` UV texture (row 0 at the top) inside ``region``.

    Returns:
        ``[size, size]`` bool array.
    """
    uv = template.uvs.numpy().astype(np.float64)
    idx = np.asarray(region.indices, dtype=np.int64)
    if region.loop:
        return _fill_polygons([_uv_to_pixels(uv[idx], size)], size)
    inside = np.zeros(uv.shape[0], bool)
    inside[idx] = True
    faces = template.faces.numpy()
    tris = faces[inside[faces].all(axis=1)]
    return _fill_polygons([_uv_to_pixels(uv[t], size) for t in tris], size)


def uv_coverage_mask(template: Template, size: int) -> np.ndarray:
    """``[size, size]`` bool: texels covered by any template triangle in UV space."""
    faces = template.faces.numpy()
    uv = template.uvs.numpy().astype(np.float64)
    return _fill_polygons([_uv_to_pixels(uv[t], size) for t in faces], size)


@functools.lru_cache(maxsize=8)
def _skin_uv_mask_cached(size: int) -> np.ndarray:
    return skin_uv_mask(load_template(), size)


def skin_uv_mask(template: Template | None, size: int) -> np.ndarray:
    """The valid skin region in UV (section 5.1.1's mask channel), ``[size, size]`` bool.

    Inside the face oval, minus the eyes (slightly enlarged, so lashes stay out), the
    brows and the inner mouth; lips and nostrils count as skin. ``template=None`` uses
    :func:`load_template` and caches the result per size.
    """
    if template is None:
        return _skin_uv_mask_cached(int(size)).copy()
    mask = region_uv_mask(template, template.region("face_oval"), size)
    mask &= uv_coverage_mask(template, size)
    grow = max(1, round(size / 256))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    for name in ("left_eye", "right_eye", "left_brow", "right_brow", "lips_inner"):
        hole = region_uv_mask(template, template.region(name), size).astype(np.uint8)
        if name.endswith("eye"):
            hole = cv2.dilate(hole, kernel)
        mask &= ~hole.astype(bool)
    return mask


@functools.lru_cache(maxsize=8)
def _eyes_uv_coverage_cached(size: int, supersample: int) -> np.ndarray:
    t = load_template()
    big = size * supersample
    eyes = region_uv_mask(t, t.region("left_eye"), big) | region_uv_mask(t, t.region("right_eye"), big)
    return eyes.reshape(size, supersample, size, supersample).mean(axis=(1, 3)).astype(np.float32)


def eyes_uv_coverage(size: int, supersample: int = 4) -> np.ndarray:
    """Fraction of each texel of a ``size × size`` UV texture that the two eye openings
    cover (area-averaged from a ``supersample``-times finer mask), ``[size, size]`` float32
    in [0, 1]; cached per size.

    The eyes' reflectance is not the skin's: the specular gauge leaves these texels as
    they are (:func:`facerefl.models.components.level.rescale_to_level`'s ``fixed``).
    """
    return _eyes_uv_coverage_cached(int(size), int(supersample)).copy()
