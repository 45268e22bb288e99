"""Photo-only effects in the rendered image: a sun with ray-cast hard shadows, glasses.

Both act on the linear render ``[H, W, 3]`` (camera frame, docs/conventions.md) of one
synthetic scene, before the sensor model; neither touches the reflectance maps, so the
target maps keep the skin underneath (see :mod:`facerefl.data.effects`).

The sun is a directional light of irradiance ``E`` (RGB, at normal incidence) towards
unit ``l``; its radiance is ``E δ(ω − l)``, whose order-2 SH projection is ``E Y(l)``.
The photo gets its exact contribution ``f(l, v) (n·l) E V(l)`` (diffuse + GGX, the BRDF of
the Monte Carlo renderer) with ``V`` ray-cast against the mesh, and the example's SH
light becomes the environment's plus ``E Y(l)``: still the SH projection of everything
that lit the face.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from facerefl.data.effects import GlassesSettings, SunSettings
from facerefl.data.lighting import LightSample
from facerefl.data.procedural import Reflectance, _bezier
from facerefl.data.render_mc import brdf_cos
from facerefl.data.scene import Scene
from facerefl.geometry.raycast import RayCaster
from facerefl.render.brdf import DEFAULT_ROUGHNESS
from facerefl.render.raster import GBuffer
from facerefl.render.sh import irradiance, sh_basis
from facerefl.render.shading import perturb_normal
from facerefl.render.texture import sample_texture

_LUMA = np.array([0.2126, 0.7152, 0.0722])
_Y00 = 0.5 / math.sqrt(math.pi)


# -------------------------------------------------------------------------------- sun


@dataclass(frozen=True)
class Sun:
    """A directional light added to an environment.

    Attributes:
        direction: ``[3]`` float64 unit vector towards the sun, camera frame.
        irradiance: ``[3]`` float64 linear RGB irradiance at normal incidence (after
            ``scale``).
        scale: factor applied to the environment (it is already in ``irradiance``).
        softness_px: std-dev of the blur of the shadow edges, pixels.
    """

    direction: np.ndarray
    irradiance: np.ndarray
    scale: float
    softness_px: float

    @property
    def sh(self) -> torch.Tensor:
        """``[3, 9]`` float64 SH projection of the sun's radiance."""
        y = sh_basis(torch.as_tensor(self.direction, dtype=torch.float64))
        return torch.as_tensor(self.irradiance, dtype=torch.float64)[:, None] * y[None]


def sample_sun(rng: np.random.Generator, light: LightSample, s: SunSettings) -> Sun:
    """Draw a sun for environment ``light`` (its strength relative to the light's mean)."""
    elev = math.radians(rng.uniform(*s.elevation_deg))
    az = math.radians(rng.uniform(-s.azimuth_deg, s.azimuth_deg))
    d = np.array([math.sin(az) * math.cos(elev), math.sin(elev), math.cos(az) * math.cos(elev)])
    ratio = math.exp(rng.uniform(math.log(s.ratio[0]), math.log(s.ratio[1])))
    mean_radiance = float(_LUMA @ light.sh[:, 0].double().numpy()) * _Y00
    colour = np.array([1.0, rng.uniform(0.88, 1.0), rng.uniform(0.72, 1.0)])
    colour = colour / float(_LUMA @ colour)
    scale = 1.0 / (1.0 + ratio / 2.0)
    e = ratio * math.pi * max(mean_radiance, 1e-6) * colour * scale
    return Sun(d / np.linalg.norm(d), e, scale, float(rng.uniform(*s.softness_px)))


def with_sun(light: LightSample, sun: Sun) -> tuple[LightSample, torch.Tensor]:
    """The environment scaled by ``sun.scale`` and the total light's SH ``[3, 9]`` float32."""
    env = dataclasses.replace(light, gain=light.gain * sun.scale,
                              sh=(light.sh.double() * sun.scale).float())
    return env, (light.sh.double() * sun.scale + sun.sh).float()


def sun_visibility(gbuf: GBuffer, caster: RayCaster, sun: Sun) -> torch.Tensor:
    """``[H, W]`` in [0, 1]: how much of each covered pixel sees the sun (0 elsewhere).

    One ray per pixel from the surface point (offset along the interpolated normal),
    then a blur of ``sun.softness_px`` inside the covered pixels.
    """
    m = gbuf.mask[0, ..., 0] > 0.5
    vis = np.zeros(m.shape, np.float32)
    p = gbuf.position[0][m].double().numpy()
    n = F.normalize(gbuf.normal[0][m].double(), dim=-1).numpy()
    facing = n @ sun.direction > 0
    eps = 2e-3 * caster.scale
    org = p[facing] + eps * n[facing]
    lit = np.zeros(len(p), bool)
    lit[facing] = ~caster.hits(org, np.broadcast_to(sun.direction, org.shape).copy())
    mf = m.numpy()
    vis[mf] = lit
    if sun.softness_px > 0.3:
        num = cv2.GaussianBlur(vis, (0, 0), sun.softness_px)
        den = cv2.GaussianBlur(mf.astype(np.float32), (0, 0), sun.softness_px)
        vis = np.where(mf, num / np.maximum(den, 1e-4), 0.0).astype(np.float32)
    return torch.from_numpy(vis)


def render_sun(gbuf: GBuffer, refl: Reflectance, sun: Sun, visibility: torch.Tensor,
               roughness: float = DEFAULT_ROUGHNESS) -> torch.Tensor:
    """The sun's contribution ``[H, W, 3]`` (linear RGB, 0 off the face) to the photo."""
    m = gbuf.mask[0, ..., 0] > 0.5
    uv = gbuf.uv[0][m][None, None]
    albedo = sample_texture(refl.albedo[None], uv)[0, 0]
    t_r = sample_texture(refl.specular[None], uv)[0, 0]
    n_ts = F.normalize(sample_texture(refl.normal[None], uv)[0, 0], dim=-1)
    geo_n = F.normalize(gbuf.normal[0][m], dim=-1)
    n = perturb_normal(geo_n, gbuf.tangent[0][m], gbuf.bitangent[0][m], n_ts)
    l = torch.as_tensor(sun.direction, dtype=albedo.dtype).expand_as(n)
    f = brdf_cos(l, n, gbuf.view_dir[0][m], albedo, t_r, roughness)
    out = torch.zeros(*m.shape, 3)
    e = torch.as_tensor(sun.irradiance, dtype=albedo.dtype)
    out[m] = f * e * visibility[m][:, None] * ((geo_n * l).sum(-1, keepdim=True) > 0)
    return out


# ---------------------------------------------------------------------------- glasses

_FRAMES = np.array([
    [0.015, 0.013, 0.012],  # black
    [0.05, 0.025, 0.012],  # dark brown / tortoise
    [0.35, 0.27, 0.12],  # gold metal
    [0.40, 0.40, 0.42],  # silver metal
    [0.25, 0.03, 0.03],  # red
    [0.03, 0.06, 0.20],  # blue
], np.float32)
_TINTS = np.array([[1.0, 1.0, 1.0], [1.0, 0.8, 0.55], [0.8, 1.0, 0.8], [0.8, 0.9, 1.1]])
_SS = 2  # supersampling of the drawn masks


@dataclass(frozen=True)
class Glasses:
    """A pair of glasses in the camera frame (cm).

    Attributes:
        rims: two ``[K, 3]`` closed lens outlines.
        bridge: ``[K, 3]`` polyline between the lenses.
        arms: two ``[K, 3]`` polylines from the hinges back towards the ears.
        thickness_cm: frame thickness.
        frame_albedo: ``[3]`` linear RGB.
        transmission: ``[3]`` lens transmission (linear RGB).
        reflection: fraction of the ambient radiance the lens reflects.
        forward: ``[3]`` unit normal of the lens plane (out of the face).
        shadow: darkness of the cast shadow under soft light.
    """

    rims: tuple[np.ndarray, np.ndarray]
    bridge: np.ndarray
    arms: tuple[np.ndarray, np.ndarray]
    thickness_cm: float
    frame_albedo: np.ndarray
    transmission: np.ndarray
    reflection: float
    forward: np.ndarray
    shadow: float


def sample_glasses(rng: np.random.Generator, scene: Scene, s: GlassesSettings) -> Glasses:
    """Glasses sitting on the nose of ``scene``'s face, in front of the eyes."""
    v = scene.mesh.vertices[:468].double().numpy()
    rot = scene.head_rotation
    origin = v[168]  # top of the nose bridge

    def local(p):
        return (p - origin) @ rot

    eyes = [local((v[33] + v[133]) / 2), local((v[362] + v[263]) / 2)]
    head_x = abs(local(v[356])[0]) + 0.3
    dz = rng.uniform(0.2, 0.6)
    dy = rng.uniform(-0.3, 0.2)
    half_gap = rng.uniform(0.75, 1.05)
    out_shift = rng.uniform(-0.1, 0.35)
    aspect = rng.uniform(0.6, 0.85)
    expo = rng.uniform(2.0, 4.5)
    t = np.linspace(0.0, 2 * math.pi, 48, endpoint=False)
    ct, st = np.cos(t), np.sin(t)
    rims, inner_tops, outer = [], [], []
    for k, side in ((0, -1.0), (1, 1.0)):
        cx = eyes[k][0] + side * out_shift
        a = abs(cx) - half_gap
        b = a * aspect
        cy = eyes[k][1] + dy
        x = cx + a * np.sign(ct) * np.abs(ct) ** (2 / expo)
        y = cy + b * np.sign(st) * np.abs(st) ** (2 / expo)
        z = dz - 0.15 * ((x - cx) / a) ** 2
        rims.append(np.stack([x, y, z], 1))
        inner_tops.append(np.array([side * half_gap, cy + 0.4 * b, dz]))
        outer.append(np.array([cx + side * a, cy + 0.4 * b, dz - 0.15]))
    bridge = _bezier(inner_tops[0], np.array([0.0, inner_tops[0][1] + 0.2, dz + 0.1]),
                     inner_tops[1], 12)
    arms = []
    for k, side in ((0, -1.0), (1, 1.0)):
        hinge = outer[k] + np.array([side * 0.3, 0.0, -0.4])
        end = np.array([side * head_x, outer[k][1] - 0.3, -6.5])
        arms.append(np.linspace(hinge, end, 24))

    def camera(p):
        return origin + p @ rot.T

    tinted = rng.random() < s.tinted
    if tinted:
        tint = _TINTS[rng.integers(len(_TINTS))]
        trans = rng.uniform(*s.transmission) * tint / float(_LUMA @ tint)
    else:
        trans = np.full(3, rng.uniform(0.9, 0.98))
    metal = rng.random() < 0.35
    frame = _FRAMES[rng.integers(2, 4) if metal else rng.choice([0, 1, 4, 5], p=[0.45, 0.35, 0.1, 0.1])]
    thick = rng.uniform(*s.frame_cm) * (0.4 if metal else 1.0)
    return Glasses(
        rims=(camera(rims[0]), camera(rims[1])), bridge=camera(bridge),
        arms=(camera(arms[0]), camera(arms[1])), thickness_cm=float(thick),
        frame_albedo=frame * np.exp(rng.normal(0, 0.1, 3)).astype(np.float32),
        transmission=np.clip(trans, 0, 1), reflection=float(rng.uniform(*s.reflection)),
        forward=rot[:, 2].copy(), shadow=float(rng.uniform(*s.shadow)))


def _project(p: np.ndarray, scene: Scene) -> np.ndarray:
    """Pixel (x, y) and depth of camera-frame points ``[K, 3]``, as ``[K, 3]``."""
    c = scene.camera
    w = np.maximum(-p[:, 2], 1e-6)
    return np.stack([c.cx + c.fx * p[:, 0] / w, c.cy - c.fy * p[:, 1] / w, w], 1)


def _draw(shape: tuple[int, int], lines: list[np.ndarray], closed: list[bool],
          width_px: float, fill: bool = False) -> np.ndarray:
    """Anti-aliased mask ``[H, W]`` in [0, 1] of pixel polylines (``_SS`` times supersampled)."""
    h, w = shape
    img = np.zeros((h * _SS, w * _SS), np.float32)
    for pts, cl in zip(lines, closed):
        if len(pts) < 2:
            continue
        q = np.round(pts[:, :2] * _SS * 16).astype(np.int32)
        if fill:
            cv2.fillPoly(img, [q], 1.0, cv2.LINE_AA, 4)
        else:
            cv2.polylines(img, [q], cl, 1.0, max(1, int(round(width_px * _SS))), cv2.LINE_AA, 4)
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)


def _visible_runs(pix: np.ndarray, gbuf: GBuffer) -> list[np.ndarray]:
    """Pieces of a projected polyline ``[K, 3]`` (x, y, depth) not hidden by the face."""
    h, w = gbuf.depth.shape[1:]
    x = np.clip(pix[:, 0].astype(int), 0, w - 1)
    y = np.clip(pix[:, 1].astype(int), 0, h - 1)
    depth = gbuf.depth[0].numpy()[y, x]
    covered = gbuf.mask[0, ..., 0].numpy()[y, x] > 0.5
    ok = ~covered | (pix[:, 2] < depth + 0.2)
    runs, cur = [], []
    for i, good in enumerate(ok):
        if good:
            cur.append(pix[i])
        elif cur:
            runs.append(np.array(cur))
            cur = []
    if cur:
        runs.append(np.array(cur))
    return runs


def _shadow_points(p: np.ndarray, g: Glasses, eye_plane: np.ndarray, l: np.ndarray) -> np.ndarray:
    """Where frame points ``p [K, 3]`` cast their shadow along ``-l`` on the eye plane."""
    t = ((p - eye_plane) @ g.forward) / max(float(l @ g.forward), 1e-3)
    return p - t[:, None] * l[None]


def add_glasses(linear: torch.Tensor, scene: Scene, gbuf: GBuffer, g: Glasses,
                light_sh: torch.Tensor, sun: Sun | None = None,
                sun_vis: torch.Tensor | None = None) -> torch.Tensor:
    """The photo ``[H, W, 3]`` (linear) seen with glasses ``g`` on.

    The frames are lit by the irradiance of ``light_sh [3, 9]`` (the total light) about
    the lens normal; the lenses tint what is behind them and reflect a little ambient
    light; the frames cast a shadow on the face along the sun (sharp, as dark as the
    sun's share of the light, only where the sun reaches) or else along the dominant
    direction of the SH light (soft).
    """
    h, w = linear.shape[:2]
    img = linear.numpy().copy()
    face = gbuf.mask[0, ..., 0].numpy()
    rims = [_project(r, scene) for r in g.rims]
    bridge = _project(g.bridge, scene)
    depth = float(np.mean([r[:, 2].mean() for r in rims]))
    width = g.thickness_cm * scene.camera.fx / depth

    # the cast shadow of the frames (and of tinted lenses)
    sh = light_sh.double().numpy()
    if sun is not None:
        l, soft = sun.direction, sun.softness_px
        strength = float(_LUMA @ sun.irradiance) / (
            float(_LUMA @ sun.irradiance) + math.pi * float(_LUMA @ sh[:, 0]) * _Y00)
    else:
        d = _LUMA @ sh[:, [3, 1, 2]]
        l = d / max(float(np.linalg.norm(d)), 1e-9)
        soft, strength = 2.5, g.shadow
    v = scene.mesh.vertices[:468].double().numpy()
    eye_plane = (v[33] + v[133] + v[362] + v[263]) / 4
    if float(l @ g.forward) > 0.2:
        shadow_lines = [_project(_shadow_points(r, g, eye_plane, l), scene) for r in g.rims]
        shadow_lines.append(_project(_shadow_points(g.bridge, g, eye_plane, l), scene))
        shadow = _draw((h, w), shadow_lines, [True, True, False], width)
        lens_t = 1.0 - float(_LUMA @ g.transmission)
        if lens_t > 0.2:
            shadow = np.maximum(shadow, lens_t * _draw((h, w), shadow_lines[:2], [True, True], 0, True))
        shadow = cv2.GaussianBlur(shadow, (0, 0), max(soft, 0.5))
        if sun_vis is not None:
            shadow = shadow * sun_vis.numpy()
        img *= (1 - strength * shadow * face)[..., None]

    # lenses: tint and a faint reflection of the ambient light
    lens = _draw((h, w), rims, [True, True], 0, fill=True)
    n = torch.as_tensor(g.forward, dtype=torch.float64)
    view = -torch.as_tensor(g.bridge.mean(0), dtype=torch.float64)
    view = view / view.norm()
    refl_dir = 2 * (n @ view) * n - view
    ambient = (sh_basis(refl_dir) @ torch.as_tensor(sh).T).clamp_min(0).numpy()
    ramp = np.linspace(1.5, 0.5, h, dtype=np.float32)[:, None, None]
    img = img * (1 - lens[..., None] * (1 - g.transmission)) + lens[..., None] * g.reflection * ambient * ramp

    # frames: rims, bridge, and the arms where the face does not hide them
    lines = [*rims, bridge]
    closed = [True, True, False]
    for arm in g.arms:
        runs = _visible_runs(_project(arm, scene), gbuf)
        lines += runs
        closed += [False] * len(runs)
    frame = _draw((h, w), lines, closed, width)
    e = irradiance(torch.as_tensor(sh)[None], n[None, None])[0, 0].numpy()
    colour = g.frame_albedo * e / math.pi + 0.04 * ambient
    img = img * (1 - frame[..., None]) + colour * frame[..., None]
    return torch.from_numpy(img.astype(np.float32))
