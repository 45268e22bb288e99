"""Validate the shading model against Monte Carlo references.

``python -m facerefl.render.validate [--json PATH] [--quick]`` prints a table and
optionally writes the numbers as JSON. Every reference is estimated with deterministic
(seeded or quasi-random) sample sets, so the numbers are reproducible.

Checks (relative errors are ``|model − reference| / reference`` per colour channel):

* ``irradiance``: order-2 SH lighting, no occlusion, :func:`diffuse_radiance` vs
  cosine-weighted quasi-Monte Carlo of equation 6.
* ``occluded_diffuse``: a non-convex shape with analytic ("ray-cast") visibility: points
  on the floor of a trench (two parallel walls), in several orientations. The visibility
  is projected to SH as a baker would (0 below the tangent plane), then combined with
  the lighting by the SH triple product; the reference integrates ``L · V · cos``
  with the exact visibility.
* ``occluded_diffuse_raycast``: the same comparison inside a hemispherical bowl mesh,
  with visibility ray-cast by Embree (trimesh + embreex) for both the bake and the
  reference.
* ``specular``: the split-sum model (both forms) vs importance-sampled GGX
  (height-correlated Smith, Schlick Fresnel) under SH lighting, for roughness 0.2–0.8,
  view angles 0–75° and two specular intensities.
* ``white_furnace``: albedo 1, t_r 0, unit constant lighting must give radiance 1.
* ``occlusion``: for an open texel, cones about and tilted from the normal and walls
  (:data:`OCCLUSION_CASES`): ambient occlusion (absolute error), the triple-product
  diffuse (relative error) and specular occlusion against the Monte Carlo ratio of
  visibility-weighted to unweighted GGX integrals (absolute error), roughness 0.3 and
  0.6, views 0–75°. The open texel's AO and SO are reported as values (both must be 1).
  Measured errors and what they come from: docs/occlusion.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

from facerefl.fsutil import atomic_write_text
from facerefl.render.brdf import F0_MAX, f90_from_f0, hammersley, sample_ggx_half
from facerefl.render.sh import project_to_sh, sh_basis, sphere_quadrature
from facerefl.render.shading import (
    DEFAULT_SPEC_MODEL,
    SPEC_MODELS,
    ambient_occlusion,
    diffuse_radiance,
    shade,
    specular_occlusion,
    specular_radiance,
)

__all__ = [
    "random_lighting",
    "irradiance_check",
    "occluded_diffuse_check",
    "raycast_occlusion_check",
    "specular_check",
    "OCCLUSION_CASES",
    "occlusion_check",
    "white_furnace_check",
    "run_all",
    "main",
]

_DT = torch.float64


def _frame(n: np.ndarray) -> np.ndarray:
    """Orthonormal basis ``[3, 3]`` whose rows are (t, b, n) for a unit normal n."""
    helper = np.array([1.0, 0.0, 0.0]) if abs(n[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    t = np.cross(helper, n)
    t /= np.linalg.norm(t)
    return np.stack([t, np.cross(n, t), n])


def _unit(rng: np.random.Generator, k: int) -> np.ndarray:
    d = rng.normal(size=(k, 3))
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def _cosine_samples(n: int) -> np.ndarray:
    """Cosine-distributed directions ``[n, 3]`` around +z (Hammersley, deterministic)."""
    u = hammersley(n)
    r = np.sqrt(u[:, 0])
    phi = 2.0 * np.pi * u[:, 1]
    return np.stack([r * np.cos(phi), r * np.sin(phi), np.sqrt(1.0 - u[:, 0])], axis=1)


def random_lighting(seed: int) -> torch.Tensor:
    """A plausible, strictly positive order-2 SH lighting ``[1, 3, 9]`` (float64).

    An ambient term plus three coloured directional lobes ``max(0, d·ω)^4``, projected
    to order 2, then lifted so that its minimum over the sphere is 0.05 of its mean.
    """
    rng = np.random.default_rng(seed)
    d, w = sphere_quadrature(32, 64)
    dn = d.numpy()
    vals = np.full((len(dn), 3), 0.2)
    for dirn, col in zip(_unit(rng, 3), rng.uniform(0.2, 1.5, size=(3, 3))):
        vals += np.clip(dn @ dirn, 0.0, None)[:, None] ** 4 * col
    coeffs = project_to_sh(d, torch.as_tensor(vals), w)  # [3, 9]
    rad = sh_basis(d) @ coeffs.T
    lift = (0.05 * rad.mean(0) - rad.min(0).values).clamp_min(0.0)
    coeffs[:, 0] += lift * 2.0 * math.sqrt(math.pi)
    return coeffs[None]


def _eval_light(light: torch.Tensor, dirs: np.ndarray) -> np.ndarray:
    return (sh_basis(torch.as_tensor(dirs)) @ light[0].T).numpy()


def _rel(model: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return np.abs(model - ref) / np.abs(ref)


def irradiance_check(n_normals: int = 64, n_samples: int = 1 << 14, seed: int = 0) -> dict:
    """Unoccluded diffuse radiance vs quasi-Monte Carlo; returns mean/max relative error."""
    rng = np.random.default_rng(seed)
    light = random_lighting(seed)
    normals = _unit(rng, n_normals)
    local = _cosine_samples(n_samples)
    ref = np.stack([_eval_light(light, local @ _frame(n)).mean(0) for n in normals])
    model = diffuse_radiance(torch.as_tensor(normals)[None], light)[0].numpy()
    err = _rel(model, ref)
    return {"mean": float(err.mean()), "max": float(err.max())}


def _trench_visibility(dirs: np.ndarray, x0: float, width: float, depth: float) -> np.ndarray:
    """Exact visibility from the floor point (x0, 0, 0) of a trench with walls at
    x = ±width/2 rising to z = depth (infinite along y); 0 below the floor."""
    half = width / 2.0
    x, z = dirs[:, 0], dirs[:, 2]
    dist = np.where(x > 0, half - x0, half + x0)
    with np.errstate(divide="ignore", invalid="ignore"):
        hit_z = np.where(np.abs(x) > 1e-12, dist / np.abs(x) * z, np.inf)
    return ((z > 0) & (hit_z >= depth)).astype(np.float64)


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def occluded_diffuse_check(
    n_orient: int = 6, n_points: int = 7, n_samples: int = 1 << 14, seed: int = 1
) -> dict:
    """SH triple-product diffuse vs exact-visibility quasi-Monte Carlo in a trench."""
    rng = np.random.default_rng(seed)
    width, depth = 2.0, 1.0
    cases = []
    for _ in range(n_orient):
        rot = _rotation(rng)  # scene-to-camera rotation; V(ω) = V0(Rᵀω)
        for x0 in np.linspace(-0.9, 0.9, n_points) * width / 2.0:
            cases.append((rot[:, 2], lambda d, r=rot, x=x0: _trench_visibility(d @ r, x, width, depth)))
    return _occluded_errors(random_lighting(seed), cases, (96, 192), n_samples)


def _occluded_diffuse(light: torch.Tensor, cases: list, quadrature: tuple[int, int],
                      n_samples: int) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Triple-product diffuse and its quasi-Monte Carlo reference for ``cases`` of
    ``(normal [3], visibility(dirs [M, 3]) -> [M])``: the visibility is baked to SH with a
    product quadrature and, for the reference, evaluated at cosine samples.

    Returns:
        visibility SH ``[K, 9]``, model ``[K, 3]`` and reference ``[K, 3]`` radiance.
    """
    qd, qw = sphere_quadrature(*quadrature)
    local = _cosine_samples(n_samples)
    vis, refs = [], []
    for normal, visibility in cases:
        vis.append(project_to_sh(qd, torch.as_tensor(visibility(qd.numpy()))[:, None], qw)[0])
        samples = local @ _frame(normal)
        refs.append((_eval_light(light, samples) * visibility(samples)[:, None]).mean(0))
    normals = torch.as_tensor(np.stack([c[0] for c in cases]))[None]
    vis = torch.stack(vis)
    model = diffuse_radiance(normals, light, vis[None])[0].numpy()
    return vis, model, np.stack(refs)


def _occluded_errors(light: torch.Tensor, cases: list, quadrature: tuple[int, int], n_samples: int) -> dict:
    """Mean/max relative error of :func:`_occluded_diffuse` over all cases and channels."""
    _, model, ref = _occluded_diffuse(light, cases, quadrature, n_samples)
    err = _rel(model, ref)
    return {"mean": float(err.mean()), "max": float(err.max())}


def _bowl_intersector():
    """Ray intersector (Embree through trimesh) for the inside of a unit hemispherical bowl
    centred at the origin, open towards +z (the faces of an icosphere below z = 0)."""
    import trimesh
    from trimesh.ray import ray_pyembree

    sphere = trimesh.creation.icosphere(subdivisions=4)
    keep = np.nonzero(sphere.vertices[sphere.faces][:, :, 2].max(axis=1) <= 1e-9)[0]
    return ray_pyembree.RayMeshIntersector(sphere.submesh([keep], append=True))


def _raycast_visibility(caster, point: np.ndarray, normal: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """1 where a ray from just above ``point`` escapes and is above the tangent plane.

    The origin is lifted by 2e-3 along the normal: points are placed on the ideal sphere,
    and the flat facets of the subdivided icosphere lie up to ~1e-3 inside it."""
    origins = np.broadcast_to(point + 2e-3 * normal, dirs.shape)
    hit = caster.intersects_any(np.ascontiguousarray(origins), np.ascontiguousarray(dirs))
    return ((~hit) & (dirs @ normal > 0)).astype(np.float64)


def raycast_occlusion_check(n_samples: int = 1 << 14, seed: int = 4) -> dict:
    """SH triple-product diffuse vs ray-cast (Embree) visibility inside a hemispherical bowl.

    Points on the inner surface from the bottom to near the rim; visibility is ray-cast
    both for the SH bake (a 48×96 product quadrature, 0 below the tangent plane) and for
    the cosine-weighted quasi-Monte Carlo reference.
    """
    caster = _bowl_intersector()
    cases = []
    spots = [(0.0, 0.0)] + [(t, f) for t in (25.0, 50.0, 70.0) for f in (0.0, 120.0, 240.0)]
    for theta, phi in spots:
        t, f = math.radians(theta), math.radians(phi)
        point = np.array([math.sin(t) * math.cos(f), math.sin(t) * math.sin(f), -math.cos(t)])
        normal = -point  # inward
        cases.append((normal, lambda d, p=point, n=normal: _raycast_visibility(caster, p, n, d)))
    return _occluded_errors(random_lighting(seed), cases, (48, 96), n_samples)


def _ggx_samples(n: np.ndarray, v: np.ndarray, t_r: float, rough: float, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Importance samples of ``f_r (n·l)`` (GGX, height-correlated Smith, Schlick):
    light directions ``[M, 3]`` (camera frame) and weights ``[M]`` whose mean estimates
    ``∫ f_r g (n·l) dl`` for a function ``g`` evaluated at the directions."""
    frame = _frame(n)
    vl = frame @ v
    alpha = max(rough, 0.05) ** 2
    a2 = alpha * alpha
    h = sample_ggx_half(u, alpha)
    vh = h @ vl
    nl = 2.0 * vh * h[:, 2] - vl[2]
    ok = (nl > 0) & (vh > 0)
    l_local = 2.0 * vh[:, None] * h - vl
    nv = vl[2]
    nls = np.where(ok, nl, 1.0)
    vis = 0.5 / (nls * np.sqrt(nv * nv * (1 - a2) + a2) + nv * np.sqrt(nls * nls * (1 - a2) + a2))
    f0 = F0_MAX * t_r
    f90 = float(f90_from_f0(torch.tensor(f0)))
    fres = f0 + (f90 - f0) * (1.0 - np.clip(vh, 0, 1)) ** 5
    return l_local @ frame, np.where(ok, 4.0 * vis * nl * vh / h[:, 2] * fres, 0.0)


def _mc_specular(light, n, v, t_r, rough, u) -> np.ndarray:
    """Importance-sampled ``∫ f_r L (n·l) dl`` under SH lighting, ``[3]``."""
    dirs, w = _ggx_samples(n, v, t_r, rough, u)
    return (w[:, None] * _eval_light(light, dirs)).mean(0)


def specular_check(
    roughness=(0.2, 0.35, 0.5, 0.65, 0.8),
    view_deg=(0.0, 15.0, 30.0, 45.0, 60.0, 75.0),
    t_r=(0.1, 0.5),
    n_orient: int = 3,
    n_samples: int = 1 << 15,
    seed: int = 2,
) -> dict:
    """Both specular forms vs Monte Carlo GGX; returns per-form mean/max relative error."""
    rng = np.random.default_rng(seed)
    light = random_lighting(seed)
    u = rng.random((n_samples, 2))
    cases = []
    for rot in [_rotation(rng) for _ in range(n_orient)]:
        n = rot[:, 2]
        for deg in view_deg:
            th = math.radians(deg)
            v = rot @ np.array([math.sin(th), 0.0, math.cos(th)])
            for r in roughness:
                for s in t_r:
                    cases.append((n, v, s, r, _mc_specular(light, n, v, s, r, u)))
    normal = torch.as_tensor(np.stack([c[0] for c in cases]))[None]
    view = torch.as_tensor(np.stack([c[1] for c in cases]))[None]
    spec = torch.as_tensor([[c[2]] for c in cases], dtype=_DT)[None]
    rough = torch.as_tensor([[c[3]] for c in cases], dtype=_DT)[None]
    ref = np.stack([c[4] for c in cases])
    out = {}
    for form in SPEC_MODELS:
        model = specular_radiance(normal, view, light, spec, rough, spec_model=form)[0].numpy()
        err = _rel(model, ref)
        out[form] = {"mean": float(err.mean()), "max": float(err.max())}
    return out


def _cone_visibility(half_deg: float, tilt_deg: float = 0.0):
    """Local-frame visibility (normal +z): a cone of half-angle ``half_deg`` about an axis
    tilted by ``tilt_deg`` towards +x, cut at the tangent plane as a baker would."""
    t = math.radians(tilt_deg)
    axis, cos_half = np.array([math.sin(t), 0.0, math.cos(t)]), math.cos(math.radians(half_deg))
    return lambda d: ((d @ axis > cos_half) & (d[:, 2] > 0)).astype(np.float64)


def _wall_visibility(elevation_deg: float):
    """Local-frame visibility (normal +z) beside an infinitely long wall along y on the +x
    side, seen under ``elevation_deg`` (its height over its distance is ``tan``): a
    direction towards +x is blocked while ``z < x · tan(elevation)``. 90° is a half-space."""
    slope = math.tan(math.radians(elevation_deg)) if elevation_deg < 90.0 else math.inf
    return lambda d: ((d[:, 2] > 0) & ~((d[:, 0] > 0) & (d[:, 2] < d[:, 0] * slope))).astype(np.float64)


#: Partial-visibility cases of :func:`occlusion_check`, local frame (normal +z).
OCCLUSION_CASES = {
    "open": _cone_visibility(90.0),
    "cone30": _cone_visibility(30.0),
    "cone45": _cone_visibility(45.0),
    "cone60": _cone_visibility(60.0),
    "cone45_tilt30": _cone_visibility(45.0, 30.0),
    "cone60_tilt45": _cone_visibility(60.0, 45.0),
    "wall45": _wall_visibility(45.0),
    "wall90": _wall_visibility(90.0),
}


def _uniform_hemisphere(n: int) -> np.ndarray:
    """Uniformly distributed directions ``[n, 3]`` over the hemisphere about +z (Hammersley)."""
    u = hammersley(n)
    r = np.sqrt(1.0 - u[:, 0] ** 2)
    phi = 2.0 * np.pi * u[:, 1]
    return np.stack([r * np.cos(phi), r * np.sin(phi), u[:, 0]], axis=1)


def occlusion_check(
    roughness=(0.3, 0.6),
    view_deg=(0.0, 30.0, 60.0, 75.0),
    n_samples: int = 1 << 15,
    seed: int = 5,
) -> dict:
    """Ambient occlusion, occluded diffuse and specular occlusion vs Monte Carlo for the
    visibilities of :data:`OCCLUSION_CASES` (cones about and tilted from the normal,
    walls, an open texel), rotated into the camera frame by one random rotation.

    Per case the visibility is baked as the renderer's inputs are: SH projected with a
    96×192 product quadrature, the bent normal as the mean unoccluded direction of the
    upper hemisphere. References: AO = mean of V over cosine samples; diffuse under
    :func:`random_lighting` as in :func:`occluded_diffuse_check`; specular occlusion as
    the ratio ``∫ f_r V (n·l) dl / ∫ f_r (n·l) dl`` (importance-sampled GGX, t_r 0.5)
    for views in the plane of the tilt, on both sides of the normal.

    Returns:
        ``{case: {"ao", "ao_ref", "diffuse_rel_err" [3], "so" [R, 2·len(view_deg)],
        "so_ref" (same)}}`` with views ordered ``(+θ_0, −θ_0, +θ_1, …)``.
    """
    rng = np.random.default_rng(seed)
    rot = _rotation(rng)  # local → camera
    normal = rot[:, 2]
    cases = [(normal, lambda d, f=f: f(d @ rot)) for f in OCCLUSION_CASES.values()]
    light = random_lighting(seed)
    vis, model, ref = _occluded_diffuse(light, cases, (96, 192), n_samples)
    hemi = _uniform_hemisphere(n_samples) @ rot.T
    cos_dirs = _cosine_samples(n_samples) @ rot.T
    views = [rot @ np.array([sgn * math.sin(math.radians(a)), 0.0, math.cos(math.radians(a))])
             for a in view_deg for sgn in (1.0, -1.0)]
    u = hammersley(n_samples)
    t = lambda a: torch.as_tensor(np.array(a))[None]  # noqa: E731
    out = {}
    for k, (name, (_, visibility)) in enumerate(zip(OCCLUSION_CASES, cases)):
        bent = (visibility(hemi)[:, None] * hemi).sum(0)
        bent = bent / np.linalg.norm(bent) if np.linalg.norm(bent) > 1e-9 else normal
        count = len(views)
        px = lambda a: t(np.broadcast_to(a, (count, len(a))))  # noqa: E731
        so, so_ref = [], []
        for r in roughness:
            so.append(specular_occlusion(px(normal), t(views), px(vis[k].numpy()), px(bent), r)[0, :, 0].tolist())
            row = []
            for v in views:
                dirs, w = _ggx_samples(normal, v, 0.5, r, u)
                row.append(float((w * visibility(dirs)).sum() / w.sum()))
            so_ref.append(row)
        out[name] = {
            "ao": float(ambient_occlusion(t(normal[None]), vis[k][None, None])),
            "ao_ref": float(visibility(cos_dirs).mean()),
            "diffuse_rel_err": _rel(model[k], ref[k]).tolist(),
            "so": so,
            "so_ref": so_ref,
        }
    return out


def white_furnace_check(n: int = 256, seed: int = 3) -> dict:
    """Albedo 1, t_r 0, unit constant radiance: max |I − 1| over random normals/views."""
    rng = np.random.default_rng(seed)
    normal = _unit(rng, n)
    tangent = np.stack([_frame(x)[0] for x in normal])
    bitangent = np.cross(normal, tangent)
    view = _unit(rng, n)
    view = np.where((view * normal).sum(1, keepdims=True) < 0, -view, view)
    light = torch.zeros(1, 3, 9, dtype=_DT)
    light[..., 0] = 2.0 * math.sqrt(math.pi)
    t = lambda a: torch.as_tensor(a)[None]  # noqa: E731
    ones = torch.ones(1, n, 3, dtype=_DT)
    err = 0.0
    for form in SPEC_MODELS:
        out = shade(t(normal), t(tangent), t(bitangent), t(view), ones, torch.zeros(1, n, 1, dtype=_DT),
                    light, spec_model=form)
        err = max(err, float((out.rgb - 1.0).abs().max()))
    return {"max_abs_err": err}


def run_all(quick: bool = False) -> dict:
    """Run every check; ``quick`` uses fewer samples (for tests). Returns the JSON dict."""
    s = 1 << 12 if quick else 1 << 15
    irr = irradiance_check(n_normals=16 if quick else 64, n_samples=s)
    occ = occluded_diffuse_check(n_orient=2 if quick else 6, n_points=5 if quick else 7, n_samples=s)
    bowl = raycast_occlusion_check(n_samples=s)
    spec = specular_check(n_orient=1 if quick else 3, n_samples=1 << 13 if quick else 1 << 16)
    wf = white_furnace_check()
    occl = occlusion_check(n_samples=1 << 13 if quick else 1 << 15)
    res = {
        "irradiance_mean_rel_err": irr["mean"],
        "irradiance_max_rel_err": irr["max"],
        "occluded_diffuse_mean_rel_err": occ["mean"],
        "occluded_diffuse_max_rel_err": occ["max"],
        "occluded_diffuse_raycast_mean_rel_err": bowl["mean"],
        "occluded_diffuse_raycast_max_rel_err": bowl["max"],
        "specular_default_form": DEFAULT_SPEC_MODEL,
        "specular_mean_rel_err": spec[DEFAULT_SPEC_MODEL]["mean"],
        "specular_max_rel_err": spec[DEFAULT_SPEC_MODEL]["max"],
        "white_furnace_err": wf["max_abs_err"],
        "quick": quick,
    }
    for form in SPEC_MODELS:
        res[f"specular_{form}_mean_rel_err"] = spec[form]["mean"]
        res[f"specular_{form}_max_rel_err"] = spec[form]["max"]
    res.update(_occlusion_summary(occl))
    return res


def _occlusion_summary(cases: dict) -> dict:
    """Flat JSON entries of :func:`occlusion_check`: the open texel's AO and SO range, and
    per case the AO error, the diffuse's max relative error and SO's max absolute error."""
    so_err = {k: np.abs(np.array(c["so"]) - np.array(c["so_ref"])) for k, c in cases.items()}
    open_so = np.array(cases["open"]["so"])
    res = {
        "occlusion_open_ao": cases["open"]["ao"],
        "occlusion_open_so_min": float(open_so.min()),
        "occlusion_open_so_max": float(open_so.max()),
        "occlusion_ao_max_abs_err": max(abs(c["ao"] - c["ao_ref"]) for c in cases.values()),
        "occlusion_diffuse_max_rel_err": max(max(c["diffuse_rel_err"]) for c in cases.values()),
        "occlusion_so_mean_abs_err": float(np.mean([e.mean() for e in so_err.values()])),
        "occlusion_so_max_abs_err": float(max(e.max() for e in so_err.values())),
    }
    for k, c in cases.items():
        res[f"occlusion_{k}_ao_err"] = c["ao"] - c["ao_ref"]
        res[f"occlusion_{k}_diffuse_max_rel_err"] = max(c["diffuse_rel_err"])
        res[f"occlusion_{k}_so_max_abs_err"] = float(so_err[k].max())
    return res


class _Parser(argparse.ArgumentParser):
    """Argument errors as one ``error: ...`` line and exit code 2 (no usage dump)."""

    def error(self, message: str):  # type: ignore[override]
        print(f"error: {message}; see --help", file=sys.stderr)
        raise SystemExit(2)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(
        prog="python -m facerefl.render.validate",
        description="Compare the renderer's shading with Monte Carlo references.",
    )
    parser.add_argument("--json", type=Path, help="write the numbers to this JSON file")
    parser.add_argument("--quick", action="store_true", help="fewer samples (a few seconds)")
    args = parser.parse_args(argv)
    if args.json is not None and args.json.is_dir():
        print(f"error: --json {args.json} is a folder; give a file path", file=sys.stderr)
        return 2
    res = run_all(quick=args.quick)
    print(f"{'check':46s} {'value':>10s}")
    for k, v in res.items():
        print(f"{k:46s} {v:>10.5f}" if isinstance(v, float) else f"{k:46s} {str(v):>10s}")
    if args.json is not None:
        try:
            atomic_write_text(args.json, json.dumps(res, indent=2, sort_keys=True) + "\n", make_parents=True)
        except OSError as e:
            print(f"error: cannot write {args.json}: {e.strerror or e}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
