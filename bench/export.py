"""Export benchmark: wall time and file sizes of :func:`~facerefl.export.outputs.write_all`.

Scene: the canonical face template (or, when its asset is not fetched, a UV sphere of
the same size) 50 cm in front of a 512 x 512 camera, 512 x 512 UV maps, the fitted light
plus three named environments. ``run`` times each writer once after a warm-up render
(which fills the renderer's DFG/lobe caches) and then the whole ``write_all`` (which
renders the reconstruction, 3 relit images and the orbit view itself).
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import torch

from bench import OUT_DIR
from facerefl.assets import is_ready
from facerefl.export.gltf import PbrTextures, write_glb
from facerefl.export.maps import save_reflectance_maps
from facerefl.export.obj import write_obj
from facerefl.export.outputs import FitOutputs, write_all
from facerefl.export.relight import FaceAppearance, render_orbit, render_view
from facerefl.export.surface import surface_from_mesh, to_asset_frame
from facerefl.fsutil import atomic_write_json
from facerefl.render.maps import ReflectanceMaps
from facerefl.render.raster import Camera, Mesh

IMAGE = 512
TEXTURE = 512


def _sphere_mesh(radius: float, depth: float, n_lat: int = 32, n_lon: int = 64) -> Mesh:
    """Latitude-longitude sphere (camera frame, cm) with u = longitude, v up."""
    i = torch.arange(n_lat + 1, dtype=torch.float32)[:, None]
    j = torch.arange(n_lon + 1, dtype=torch.float32)[None, :]
    theta, phi = torch.broadcast_tensors(math.pi * i / n_lat, 2 * math.pi * j / n_lon)
    unit = torch.stack([theta.sin() * phi.sin(), theta.cos(), theta.sin() * phi.cos()], -1)
    u, v = torch.broadcast_tensors(j / n_lon, 1 - i / n_lat)
    uv = torch.stack([u, v], -1)
    row = n_lon + 1
    a = (torch.arange(n_lat)[:, None] * row + torch.arange(n_lon)[None]).reshape(-1)
    faces = torch.cat([torch.stack([a, a + row, a + 1], 1), torch.stack([a + 1, a + row, a + row + 1], 1)])
    verts = unit.reshape(-1, 3) * radius + torch.tensor([0.0, 0.0, -depth])
    return Mesh(verts, faces, uv.reshape(-1, 2), unit.reshape(-1, 3))


def _scene() -> tuple[str, Mesh]:
    if is_ready("face_mesh"):
        from facerefl.geometry.template import load_template  # bench only: tests the real mesh

        t = load_template()
        return "face template (468 v)", Mesh(t.vertices + torch.tensor([0.0, 0.0, -50.0]), t.faces, t.uvs)
    return "uv sphere (fallback)", _sphere_mesh(9.0, 50.0)


def _light(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    light = torch.randn(3, 9, generator=g) * 0.15
    light[:, 0] = 2.0 * math.sqrt(math.pi) * 0.9
    return light


def _timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0


def run(out_dir: Path) -> dict:
    """Time the exporters on a 512 x 512 scene; write ``out_dir/export.json``; return the numbers."""
    torch.manual_seed(0)
    name, mesh = _scene()
    camera = Camera(fx=1300.0, fy=1300.0, cx=IMAGE / 2, cy=IMAGE / 2, width=IMAGE, height=IMAGE)
    g = torch.Generator().manual_seed(1)
    n = torch.randn(3, TEXTURE, TEXTURE, generator=g) * 0.1
    n[2] = 1.0
    maps = ReflectanceMaps(
        torch.rand(3, TEXTURE, TEXTURE, generator=g) * 0.5 + 0.2,
        torch.rand(1, TEXTURE, TEXTURE, generator=g) * 0.5,
        n / n.norm(dim=0, keepdim=True),
    )
    face = FaceAppearance(maps)
    light = _light(2)
    envs = {f"env{i}": _light(10 + i) for i in range(3)}
    render_view(mesh, camera, face, light)  # warm-up: renderer tables

    times: dict[str, float] = {}
    _, times["render_view_s"] = _timed(lambda: render_view(mesh, camera, face, light))
    _, times["render_orbit_s"] = _timed(lambda: render_orbit(mesh, camera, face, light, 30.0))
    photo = torch.rand(3, IMAGE, IMAGE, generator=g)
    fit = FitOutputs(photo, face, light, mesh, camera, loss_history=tuple(1.0 / (i + 1) for i in range(150)),
                     metrics={"psnr": 30.0}, timings={"fit_s": 1.0})
    with tempfile.TemporaryDirectory(prefix="facerefl-bench-") as tmp:
        tmp = Path(tmp)
        surface = to_asset_frame(surface_from_mesh(mesh), 0.01)
        (tmp / "parts").mkdir()
        _, times["maps_png16_exr_s"] = _timed(lambda: save_reflectance_maps(tmp / "parts", maps))
        _, times["glb_s"] = _timed(lambda: write_glb(tmp / "parts" / "face.glb", surface,
                                                     PbrTextures(maps.albedo, maps.specular, maps.normal)))
        _, times["obj_mtl_s"] = _timed(lambda: write_obj(tmp / "parts" / "face.obj", surface))
        (tmp / "all").mkdir()
        written, times["write_all_s"] = _timed(lambda: write_all(fit, tmp / "all", envs))
        sizes = {p.name: p.stat().st_size for p in written}
    result = {
        "scene": name,
        "image": IMAGE,
        "texture": TEXTURE,
        "environments": len(envs),
        "threads": torch.get_num_threads(),
        "times_s": {k: round(v, 4) for k, v in times.items()},
        "files": len(sizes),
        "total_bytes": sum(sizes.values()),
        "largest": dict(sorted(sizes.items(), key=lambda kv: -kv[1])[:5]),
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "export.json", result)
    print(f"export bench: {name}, {IMAGE}x{IMAGE} image, {TEXTURE}x{TEXTURE} maps, {len(envs)} environments")
    for k, v in result["times_s"].items():
        print(f"  {k:<20s} {v:8.3f}")
    print(f"  {'files':<20s} {result['files']:8d}   total {result['total_bytes'] / 1e6:.2f} MB")
    return result


if __name__ == "__main__":
    run(OUT_DIR)
