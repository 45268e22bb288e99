"""Per-photo latent optimization (paper section 6, equation 1).

Given the unwrapped texture T and the photo's fixed G-buffer, the encoders give the
initial latent codes ``z = {z_a, z_s, z_n}`` and skip features ``F^l``, and the light
regressor the initial SH lighting ``z_e``. Each iteration decodes and detail-enhances
the maps (equations 2–4), renders them with the physically based renderer (equation 5)
and takes an Adam step on ``z`` and ``z_e`` to reduce the L2 distance between the
rendering and the photo over the face region. The skip features stay fixed (section 5.1.2:
only z is optimized, which is why the decoder may see just the first three levels).

Choices the paper leaves open, and ours:

* **Loss space**: mean squared error between the rendering and the photo, both
  sRGB-encoded (the photo's own encoding), over the face region. sRGB weights dark
  regions (nostrils, brows) more evenly than linear light does, and it is the space the
  reported PSNR is measured in.
* **Face region**: pixels covered by the mesh whose UV falls in the valid-skin mask of T
  (the 4th channel): visible skin, not eyes, mouth interior, or hair-covered areas the
  unwrap marked invalid.
* **Best iterate**: the returned state is the one with the lowest loss seen, not the
  last one (Adam with step 0.1 can overshoot in late iterations).
* **Non-finite loss**: the last finite state is restored, Adam's moments are reset, the
  step is halved, and the event is reported (``FitResult.restorations``).
* **Early stop** (optional): when the best loss has not improved by a relative
  ``tol`` for ``patience`` iterations.

Beyond the paper, for speed (``FitSettings.enhanced_iterations``): the enhancers take
~90 % of a step, so by default the first steps render the decoder outputs alone and only
the last 20 render ``R(D(F, z), T)``; ``None`` is the paper's loop, with the enhancers in
every step. The measurements are in ``docs/speed.md``.

Beyond the paper, the **albedo gauge** (``FitSettings.albedo_gauge``). The photo
constrains only albedo × irradiance, so equation 1 leaves each channel's albedo scale to
wherever Adam wanders. After the fit the albedo's per-channel mean over T's valid skin is
set to a prior level, the albedo-level regressor's where the networks have one
(``FitSettings.gauge_level``) or else the encoders', and the light divided by the same
factors (:func:`gauge_albedo`): the diffuse rendering is unchanged. A kept refinement result
(``refine_iterations``) is returned as refined, without the gauge. The measurements behind
these choices, and the alternatives tried, are in ``docs/albedo_gauge.md``.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from facerefl.errors import InputError
from facerefl.fit.adam import Adam
from facerefl.fit.delight import Delit, DelightSettings, albedo_size, delight
from facerefl.models.components.level import eyes_fixed, rescale_to_level, skin_level
from facerefl.models.metrics import masked_psnr
from facerefl.models.networks import LatentCode, ReflectanceNetworks
from facerefl.render.brdf import DEFAULT_ROUGHNESS
from facerefl.render.color import LUMA, linear_to_srgb
from facerefl.render.maps import ReflectanceMaps
from facerefl.render.shading import DEFAULT_SPEC_MODEL, PreparedGBuffer, shade_prepared
from facerefl.render.sh import sh_relative_change
from facerefl.render.texture import sample_texture

__all__ = ["FitSettings", "FitProblem", "FitResult", "fit_latents", "refine_albedo", "render_maps",
           "masked_psnr", "decode_maps", "skin_mean", "gauge_albedo", "detail_maps", "delight_problem"]

log = logging.getLogger(__name__)

LATENTS = ("albedo", "specular", "normal", "light")
#: Where the gauge's albedo level comes from (:func:`gauge_target`).
GAUGE_LEVELS = ("auto", "encoders", "regressor")
LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class FitSettings:
    """Optimizer settings (section 8.1 defaults: Adam, step 0.1, betas 0.9/0.999, 150 its).

    The defaults are those of ``conf/optimize.yaml`` (``iterations`` and the ``fit`` group),
    held equal to it by ``tests/test_config_defaults.py``: the config is where they are set.

    Attributes:
        iterations: maximum number of Adam steps.
        lr: Adam step size.
        betas: Adam moment decay rates.
        optimize: which latents are free (subset of ``LATENTS``); the rest stay at the
            encoders' values. The paper frees all four; the default only the albedo and
            the light (the photo moved the others away from the truth on held-out faces,
            ``docs/photo_unwrap.md``, session 9).
        lr_schedule: ``"constant"`` (the paper) or ``"cosine"``: the step falls from
            ``lr`` to ``lr · lr_end`` along half a cosine over ``iterations``.
        lr_end: the cosine schedule's last step, as a fraction of ``lr``.
        early_stop: stop when the best loss stalls (see ``tol`` and ``patience``).
        tol: relative improvement of the best loss that counts as progress.
        patience: iterations without progress before an early stop.
        enhanced_iterations: beyond the paper (None = the paper: the enhancers inside
            every step): only the last this many Adam steps render ``R(D(F, z), T)`` as
            equations 2–4 do; the steps before render the decoder outputs D_* alone (the
            coarse phase), an order of magnitude cheaper. With 0 the enhancers run once,
            on the best code of the coarse phase, and that state's loss is appended to the
            losses. Ignored when ``enhance`` is off.
        coarse_max_gain: the coarse phase stands in for the enhanced maps only while the
            albedo enhancer keeps the decoder's level: when it changes the encoders' start
            by more than this factor either way (:func:`coarse_gain`), every step renders
            the enhanced maps (the paper's loop) and a message says so. 0: never.
        roughness: GGX roughness of the skin (the paper has one global value).
        spec_model: ``"lobe"`` or ``"paper"`` (see :mod:`facerefl.render.shading`).
        enhance: apply the detail enhancers R_* (False: decoder outputs D_* are rendered
            directly, the "no enhancer" ablation of section 8.4.3).
        detail_max_size: beyond the paper: the specular and normal maps are resampled to
            the side :func:`~facerefl.fit.delight.albedo_size` picks for the face's pixel
            count (two texels per face pixel), between their network size and this cap
            (0 or the network size: left as the networks made them). Resampling adds no
            detail; it puts the three maps of a well-covered face on comparable grids.
        refine_iterations: optional second phase beyond the paper (0 = off): Adam on a
            per-texel albedo residual at ``refine_size``² added to the best decoded albedo,
            lighting and the other maps fixed, with an L2 penalty ``refine_weight`` on the
            residual. It recovers detail finer than the networks' output resolution (see
            :func:`refine_albedo`).
        refine_lr, refine_weight, refine_size: that phase's step, penalty and texel grid.
        refine_light_lr: Adam step for the SH lighting during that phase (0 keeps the
            latent phase's light fixed).
        delight: beyond the paper (None = off): after the latent phase (and the gauge),
            take the photo's own albedo detail and the eyes', brows' and mouth's colours
            without its lighting (:mod:`facerefl.fit.delight`). Replaces the refinement.
        albedo_gauge: beyond the paper (False = the paper's output as fitted): rescale
            the fitted albedo per channel so its mean over the valid skin of T is the
            encoders', dividing the light by the same factors (:func:`gauge_albedo`;
            module docstring). Applies to the latent phase's result; a kept refinement
            result is returned as refined (module docstring).
        gauge_level: the gauge's prior level (:func:`gauge_target`): ``"encoders"``, the
            skin mean of the encoders' albedo; ``"regressor"``, the albedo-level
            regressor's (:mod:`facerefl.models.components.level`; networks without one are
            refused); ``"auto"``, the regressor's where the networks have one.
        gauge_light_weight: weight of the light regressor's implied albedo level in the
            gauge's target (:func:`gauge_target`; 0 = the prior level alone).
        gauge_tolerance: how much worse (relative loss) the gauge may make the rendering
            before it is applied only in part (:func:`guarded_gauge`).
        specular_gauge: beyond the paper: with networks that have a specular-level
            regressor (:meth:`~facerefl.models.networks.ReflectanceNetworks.specular_mean`),
            the gauge also rescales the fitted specular map so its mean over the valid skin
            is that regressor's (off with ``albedo_gauge``; networks without one are left as
            they are).
        light_prior: beyond the paper (0 = the paper): the latent phase's loss adds this
            weight times the SH light's squared distance from the light regressor's,
            relative to the regressor's (:func:`~facerefl.render.sh.sh_relative_change`),
            so the photo can move the light only where it pays for it. The latent phase's
            losses (and its best iterate) include this term.
    """

    iterations: int = 150
    lr: float = 0.1
    betas: tuple[float, float] = (0.9, 0.999)
    optimize: tuple[str, ...] = ("albedo", "light")
    lr_schedule: str = "constant"
    lr_end: float = 0.05
    early_stop: bool = False
    tol: float = 1e-4
    patience: int = 20
    enhanced_iterations: int | None = 20
    coarse_max_gain: float = 2.0
    roughness: float = DEFAULT_ROUGHNESS
    spec_model: str = DEFAULT_SPEC_MODEL
    enhance: bool = True
    detail_max_size: int = 512
    refine_iterations: int = 0
    refine_lr: float = 0.02
    refine_weight: float = 1e-3
    refine_size: int = 256
    refine_light_lr: float = 0.01
    albedo_gauge: bool = True
    gauge_tolerance: float = 1.0
    gauge_level: str = "auto"
    gauge_light_weight: float = 0.0
    light_prior: float = 0.003
    specular_gauge: bool = True
    delight: DelightSettings | None = field(default_factory=DelightSettings)

    def __post_init__(self) -> None:
        if self.iterations < 0:
            raise InputError(f"iterations must be >= 0, got {self.iterations}")
        if not self.lr > 0:
            raise InputError(f"fit.lr must be > 0, got {self.lr}")
        bad = [k for k in self.optimize if k not in LATENTS]
        if bad:
            raise InputError(f"unknown latents {bad} in fit.optimize; choose from {LATENTS}")
        if self.spec_model not in ("lobe", "paper"):
            raise InputError(f"fit.spec_model must be 'lobe' or 'paper', got {self.spec_model!r}")
        if self.refine_iterations < 0 or self.refine_size < 8:
            raise InputError("fit.refine_iterations must be >= 0 and fit.refine_size >= 8")
        if self.gauge_level not in GAUGE_LEVELS:
            raise InputError(f"fit.gauge_level must be one of {GAUGE_LEVELS}, got {self.gauge_level!r}")
        if not 0.0 <= self.gauge_light_weight <= 1.0:
            raise InputError(f"fit.gauge_light_weight must be in [0, 1], got {self.gauge_light_weight}")
        if not self.light_prior >= 0.0:
            raise InputError(f"fit.light_prior must be >= 0, got {self.light_prior}")
        if not self.gauge_tolerance >= 0.0:
            raise InputError(f"fit.gauge_tolerance must be >= 0, got {self.gauge_tolerance}")
        if not 0.0 < self.roughness <= 1.0:
            raise InputError(f"fit.roughness must be in (0, 1], got {self.roughness}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise InputError(f"fit.lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if not 0.0 <= self.lr_end <= 1.0:
            raise InputError(f"fit.lr_end must be in [0, 1], got {self.lr_end}")
        if not (self.coarse_max_gain == 0 or self.coarse_max_gain >= 1):
            raise InputError(f"fit.coarse_max_gain must be 0 (off) or >= 1, got {self.coarse_max_gain}")
        if (self.enhanced_iterations or 0) < 0 or self.detail_max_size < 0:
            raise InputError("fit.enhanced_iterations (or null) and fit.detail_max_size must be >= 0")

    @property
    def enhanced_steps(self) -> int:
        """Adam steps that render the enhanced maps (see ``enhanced_iterations``)."""
        if not self.enhance:
            return 0
        return self.iterations if self.enhanced_iterations is None else min(self.enhanced_iterations, self.iterations)

    def lr_at(self, step: int) -> float:
        """The step size of Adam step ``step`` (0-based) under ``lr_schedule``.

        >>> s = FitSettings(iterations=100, lr_schedule="cosine", lr_end=0.1)
        >>> round(s.lr_at(0), 4), round(s.lr_at(50), 4), round(s.lr_at(100), 4)
        (0.1, 0.055, 0.01)
        """
        if self.lr_schedule == "constant" or self.iterations == 0:
            return self.lr
        t = min(step / self.iterations, 1.0)
        return self.lr * (self.lr_end + (1.0 - self.lr_end) * 0.5 * (1.0 + math.cos(math.pi * t)))


@dataclass(frozen=True)
class FitProblem:
    """Everything the loop needs for one photo (batch of 1).

    Attributes:
        texture: ``[1, 4, Ht, Wt]`` T: sRGB RGB in [0, 1] + valid-skin mask.
        prepared: the photo's G-buffer with baked visibility and bent normals, gathered
            once (:func:`facerefl.render.shading.prepare_gbuffer`); ``P`` covered pixels.
        target: ``[1, P, 3]`` the photo's sRGB colours at those pixels.
        weight: ``[1, P, 1]`` 1 inside the face region, 0 elsewhere (loss mask).
    """

    texture: Tensor
    prepared: PreparedGBuffer
    target: Tensor
    weight: Tensor

    def __post_init__(self) -> None:
        p = self.prepared.num_pixels
        if self.texture.ndim != 4 or self.texture.shape[:2] != (1, 4):
            raise ValueError(f"texture must be [1, 4, H, W], got {tuple(self.texture.shape)}")
        if self.target.shape != (1, p, 3):
            raise ValueError(f"target must be [1, {p}, 3], got {tuple(self.target.shape)}")
        if self.weight.shape != (1, p, 1):
            raise ValueError(f"weight must be [1, {p}, 1], got {tuple(self.weight.shape)}")
        if float(self.weight.sum()) < 1:
            raise ValueError("the face region is empty: no covered pixel has valid skin")


@dataclass
class FitResult:
    """Outcome of :func:`fit_latents`.

    Attributes:
        maps: best maps (UV, NCHW; see ``ReflectanceMaps``), detached.
        light: ``[1, 3, 9]`` best SH lighting (linear radiance, camera frame), detached.
        initial_maps, initial_light: the encoder-only start, for comparison/ablation.
        code: the best latent code (skips + z), detached.
        losses: loss at every evaluated iteration (index 0 = encoder start).
        best_iteration: index into ``losses`` of the returned state.
        restorations: how many times a non-finite loss forced a restore.
        stopped_early: whether the early-stop rule ended the loop.
        seconds: wall time of the loop; ``ms_per_iteration`` its mean per step.
        encode_seconds: time the encoders took (part of ``seconds``).
        latent_steps: entries of ``losses`` from the latent phase (the rest, if any, come
            from the albedo refinement phase).
        adam_steps: Adam steps the latent phase took (``latent_steps - 1`` unless the
            enhancers ran once after a coarse phase, whose evaluation adds an entry).
        latent_best_loss: the best loss of the latent phase alone.
        latent_maps: the latent phase's best maps (gauged when the gauge was applied).
        shading: ``[1, 3, S, S]`` the delighting's multiplicative shading residual (linear;
            applied to the diffuse term of the reconstruction only), or None.
        delight_seconds: time the delighting took (part of ``seconds``).
        out_of_range: fraction of valid skin texels outside the skin range before the
            delighting's projection, or None without delighting.
        gauge_scale: ``[1, 3]`` the factors :func:`gauge_albedo` applied to the albedo
            channels (the light was divided by them); None when no gauge was applied.
            ``losses`` are those of the optimization, before the gauge.
    """

    maps: ReflectanceMaps
    light: Tensor
    initial_maps: ReflectanceMaps
    initial_light: Tensor
    code: LatentCode
    losses: list[float]
    best_iteration: int
    restorations: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    ms_per_iteration: float = 0.0
    messages: list[str] = field(default_factory=list)
    encode_seconds: float = 0.0
    latent_steps: int = 0
    adam_steps: int = 0
    latent_best_loss: float = math.nan
    latent_maps: ReflectanceMaps | None = None
    gauge_scale: Tensor | None = None
    shading: Tensor | None = None
    delight_seconds: float = 0.0
    out_of_range: float | None = None

    @property
    def initial_loss(self) -> float:
        return self.losses[0]

    @property
    def best_loss(self) -> float:
        return self.losses[self.best_iteration]


def delight_problem(problem: FitProblem, maps: ReflectanceMaps, light: Tensor, settings: FitSettings,
                    delight_settings: DelightSettings) -> Delit:
    """:func:`~facerefl.fit.delight.delight` of one photo's latent result, at the albedo side
    its face calls for (:func:`~facerefl.fit.delight.albedo_size`, at least T's and the
    network's side)."""
    size = albedo_size(float(problem.weight.sum()), max(maps.albedo.shape[-1], problem.texture.shape[-1]),
                       delight_settings.max_size)
    return delight(problem.prepared, problem.target, maps, light, settings.roughness, settings.spec_model,
                   delight_settings, valid_skin=problem.texture[:, 3:4], size=size)


def render_maps(problem: FitProblem, maps: ReflectanceMaps, light: Tensor,
                settings: FitSettings, shading: Tensor | None = None) -> Tensor:
    """Shade ``maps`` under ``light`` at the problem's pixels → ``[1, P, 3]`` sRGB in [0, 1].

    ``shading`` ``[1, 3, S, S]`` (optional, linear UV map) multiplies the diffuse term: the
    delighting's shading residual (:mod:`facerefl.fit.delight`)."""
    out = shade_prepared(problem.prepared, maps.albedo, maps.specular, light, maps.normal,
                         roughness=settings.roughness, spec_model=settings.spec_model,
                         to_image=False)
    if shading is None:
        return linear_to_srgb(out.rgb)
    return linear_to_srgb(out.diffuse * sample_texture(shading, problem.prepared.uv) + out.specular)


def fit_render_loss(problem: FitProblem, maps: ReflectanceMaps, light: Tensor, settings: FitSettings) -> Tensor:
    """The fit's loss (equation 1) of ``maps`` and ``light`` → a scalar tensor."""
    return _loss(render_maps(problem, maps, light, settings), problem)


def decode_maps(nets: ReflectanceNetworks, code: LatentCode, texture: Tensor,
                settings: FitSettings, enhance: bool | None = None) -> ReflectanceMaps:
    """Equations 2–4: ``R(D(F, z), T)`` (or ``D(F, z)`` alone when ``enhance`` is off;
    ``enhance`` overrides ``settings.enhance`` when given)."""
    if settings.enhance if enhance is None else enhance:
        return nets.reflectance(code, texture)
    return nets.decode(code)


def _loss(pred: Tensor, problem: FitProblem) -> Tensor:
    w = problem.weight
    return ((pred - problem.target).square() * w).sum() / (w.sum() * 3)


def skin_mean(albedo: Tensor, texture: Tensor) -> Tensor:
    """Per-channel mean of ``albedo`` ``[1, 3, H, W]`` over the valid skin of T → ``[1, 3]``
    (:func:`~facerefl.models.components.level.skin_level`: T's mask resampled to the
    albedo's grid, > 0.5; an empty region falls back to the whole map)."""
    return skin_level(albedo, texture)


def gauge_albedo(maps: ReflectanceMaps, light: Tensor, target: Tensor,
                 texture: Tensor) -> tuple[ReflectanceMaps, Tensor, Tensor]:
    """Move the albedo's per-channel scale into the light.

    Multiplies albedo channel c by ``s_c = target_c / m_c`` (``m`` its :func:`skin_mean`;
    the result is clamped to [0, 1]) and divides channel c of the SH light by ``s_c``, so
    the diffuse shading, ``albedo × irradiance``, is unchanged; only the specular term sees
    the rescaled light.

    Args:
        maps: albedo ``[1, 3, H, W]`` linear in [0, 1]; specular and normal pass through.
        light: ``[1, 3, 9]`` SH radiance (linear, camera frame).
        target: ``[1, 3]`` the skin mean the albedo should have (linear).
        texture: ``[1, 4, Ht, Wt]`` T, whose mask channel is the skin region.

    Returns:
        ``(maps, light [1, 3, 9], s [1, 3])``.
    """
    albedo, scale = rescale_to_level(maps.albedo, target, texture)
    return ReflectanceMaps(albedo, maps.specular, maps.normal), light / scale[..., None], scale


def gauge_target(maps: ReflectanceMaps, light: Tensor, initial_maps: ReflectanceMaps, initial_light: Tensor,
                 texture: Tensor, light_weight: float = 0.0, prior: Tensor | None = None) -> Tensor:
    """The skin mean ``[1, 3]`` the gauge moves the fitted albedo to.

    Two estimates of the albedo level: a prior level, ``prior`` ``[1, 3]`` when given (the
    level regressor's) or else the encoders' (``initial_maps``' skin mean); and the one the
    light regressor implies (the fitted mean times the fitted light's DC over the
    regressor's, per channel: the level at which the fit's diffuse image comes from the
    regressor's light). Their geometric mean, weighted ``1 - light_weight`` and
    ``light_weight``; 0 is the prior alone.
    """
    base = skin_mean(initial_maps.albedo, texture) if prior is None else prior
    if light_weight <= 0.0:
        return base
    fitted = skin_mean(maps.albedo, texture)
    dc, dc0 = light[..., 0].clamp(min=1e-6), initial_light[..., 0].clamp(min=1e-6)
    implied = fitted * dc / dc0
    return torch.exp((1 - light_weight) * base.clamp(min=1e-6).log() + light_weight * implied.clamp(min=1e-6).log())


#: Fractions of the gauge's log-scale step that :func:`guarded_gauge` tries, in order.
GAUGE_STEPS = (1.0, 0.75, 0.5, 0.25, 0.0)


@torch.no_grad()
def guarded_gauge(problem: FitProblem, maps: ReflectanceMaps, light: Tensor, target: Tensor,
                  settings: FitSettings) -> tuple[ReflectanceMaps, Tensor, Tensor]:
    """:func:`gauge_albedo` toward ``target``, only as far as the rendering allows.

    The gauge leaves the diffuse term alone but scales the light the specular term sees by
    ``1 / s``. When the encoders' albedo level and the fit's disagree by a large factor
    (a photo unlike the training faces), that specular term can swamp the rendering. So
    the gauge moves the skin mean from the fitted ``m`` toward ``target`` by the largest
    fraction ``t`` of :data:`GAUGE_STEPS` (``m · (target / m)^t``) whose loss is at most
    ``1 + settings.gauge_tolerance`` times the fitted one; ``t = 0`` is the fit as it was.

    Returns:
        ``(maps, light, s)`` as :func:`gauge_albedo` returns them.
    """
    m = skin_mean(maps.albedo, problem.texture).clamp(min=1e-6)
    before = float(fit_render_loss(problem, maps, light, settings))
    ratio = target.clamp(min=1e-6) / m
    for t in GAUGE_STEPS:
        out = gauge_albedo(maps, light, m * ratio ** t, problem.texture)
        if t == 0.0 or float(fit_render_loss(problem, out[0], out[1], settings)) <= before * (1 + settings.gauge_tolerance):
            return out
    raise AssertionError("unreachable: the last step is the fit itself")


def _snapshot(z: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in z.items()}


def _code_from(code0: LatentCode, z: dict[str, Tensor]) -> LatentCode:
    return code0.with_z(albedo=z["albedo"], specular=z["specular"], normal=z["normal"],
                        light=z["light"])


@dataclass
class _LatentRun:
    """What the latent phase leaves for the post-phase (see :func:`_latent_loop`)."""

    code0: LatentCode
    losses: list[float]
    best_index: int
    best_z: dict[str, Tensor]
    best_maps: ReflectanceMaps
    initial_maps: ReflectanceMaps
    initial_light: Tensor
    restorations: int
    stopped_early: bool
    messages: list[str]
    steps: int


def coarse_gain(coarse: Tensor, fine: Tensor, texture: Tensor) -> float:
    """How much the albedo enhancer changes the level: the luminance-weighted skin mean of
    the enhanced albedo ``fine`` over that of the decoded ``coarse`` (``[1, 3, H, W]``
    each; see ``FitSettings.coarse_max_gain``)."""
    w = torch.tensor(LUMA, dtype=fine.dtype, device=fine.device)
    return float((skin_mean(fine, texture) * w).sum() / (skin_mean(coarse, texture) * w).sum().clamp(min=1e-6))


def _latent_loop(nets: ReflectanceNetworks, problem: FitProblem, settings: FitSettings,
                 code0: LatentCode, on_step: Callable[[int, float], None] | None) -> _LatentRun:
    """Equation 1: Adam on the free latents from the encoders' ``code0``, keeping the best
    iterate, restoring the last good state after a non-finite loss, stopping early if asked
    (module docstring).

    With ``settings.enhanced_iterations`` the first steps render the decoder outputs alone
    (the coarse phase) and the rest the enhanced maps; the best iterate is chosen within
    the last phase run, since the two phases' losses are of different maps. An early stop
    in the coarse phase moves on to the enhanced phase. When no enhanced step is left the
    best coarse code is decoded and enhanced once, and that state's loss is appended.
    """
    z = {
        "albedo": code0.albedo.z.detach().clone(),
        "specular": code0.specular.z.detach().clone(),
        "normal": code0.normal.z.detach().clone(),
        "light": code0.light.detach().clone(),
    }
    free = [k for k in LATENTS if k in settings.optimize]
    for k in free:
        z[k].requires_grad_(True)
    lr_scale = 1.0  # halved at each restoration, on top of the schedule
    coarse_end = settings.iterations - settings.enhanced_steps  # steps of the coarse phase

    def make_opt(lr_: float):
        return Adam([z[k] for k in free], lr=lr_, betas=settings.betas) if free else None

    opt = make_opt(settings.lr_at(0))
    losses: list[float] = []
    best = (math.inf, 0, _snapshot(z), None)
    good = _snapshot(z)
    restorations = 0
    since_progress = 0
    stopped_early = False
    initial_maps = initial_light = None
    step = 0  # position in the schedule (an early stop of the coarse phase skips ahead)
    taken = 0  # Adam steps taken
    enhanced = settings.enhance and coarse_end == 0
    messages: list[str] = []
    if settings.enhance and not enhanced:
        # the encoders' start as equations 2-4 give it, whatever the loop renders
        with torch.no_grad():
            initial_maps = decode_maps(nets, code0, problem.texture, settings).detach()
            gain = coarse_gain(nets.decode(code0).albedo, initial_maps.albedo, problem.texture)
        if settings.coarse_max_gain and max(gain, 1 / gain) > settings.coarse_max_gain:
            coarse_end, enhanced = 0, True  # the decoder outputs are no proxy: the paper's loop
            messages.append(f"the enhancers change the albedo level {gain:.2f}x (more than "
                            f"fit.coarse_max_gain={settings.coarse_max_gain:g}): every step renders the enhanced maps")
            log.info(messages[-1])

    while True:
        with torch.set_grad_enabled(bool(free)):
            maps = decode_maps(nets, _code_from(code0, z), problem.texture, settings, enhance=enhanced)
            loss = fit_render_loss(problem, maps, z["light"], settings)
            if settings.light_prior > 0:
                loss = loss + settings.light_prior * sh_relative_change(z["light"], code0.light).sum()
        value = float(loss.detach())
        if initial_light is None:
            if initial_maps is None:  # the loop renders what equations 2-4 give (or D alone)
                initial_maps = maps.detach()
            initial_light = z["light"].detach().clone()
        if not math.isfinite(value):
            restorations += 1
            lr_scale /= 2
            msg = (f"iteration {step}: non-finite loss; restored the last good state and "
                   f"halved the step to {settings.lr_at(step) * lr_scale:g}")
            log.warning(msg)
            messages.append(msg)
            with torch.no_grad():
                for k in z:
                    z[k].copy_(good[k])
            opt = make_opt(settings.lr_at(step) * lr_scale)
            if restorations > 5:
                messages.append("giving up after 5 restorations")
                break
            continue
        losses.append(value)
        good = _snapshot(z)
        if on_step is not None:
            on_step(step, value)
        if value < best[0] * (1 - settings.tol):
            since_progress = 0
        else:
            since_progress += 1
        if value < best[0]:
            best = (value, len(losses) - 1, _snapshot(z), maps.detach())
        if step == settings.iterations or opt is None:
            break
        if settings.early_stop and since_progress >= settings.patience:
            if enhanced or not settings.enhance or settings.enhanced_steps == 0:
                stopped_early = True
                break
            step = coarse_end  # the coarse phase stalled: go on to the enhanced phase
        else:
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for g in opt.param_groups:
                g["lr"] = settings.lr_at(step) * lr_scale
            opt.step()
            step += 1
            taken += 1
        if settings.enhance and not enhanced and step >= coarse_end and settings.enhanced_steps:
            # the enhanced phase starts from the best coarse code; its losses are not comparable
            with torch.no_grad():
                for k in z:
                    z[k].copy_(best[2][k])
            enhanced, since_progress = True, 0
            best = (math.inf, len(losses), best[2], None)

    _, best_idx, zb, maps_b = best
    if settings.enhance and not enhanced and maps_b is not None:
        # no enhanced step was taken: the enhancers run once, on the best coarse code
        with torch.no_grad():
            maps_b = decode_maps(nets, _code_from(code0, zb), problem.texture, settings).detach()
            losses.append(float(fit_render_loss(problem, maps_b, zb["light"], settings)))
        best_idx = len(losses) - 1
    if maps_b is None:  # every evaluation was non-finite: fall back to the encoder start
        with torch.no_grad():
            maps_b = decode_maps(nets, _code_from(code0, zb), problem.texture, settings).detach()
    return _LatentRun(code0, losses, best_idx, zb, maps_b, initial_maps, initial_light,
                      restorations, stopped_early, messages, taken)


def _refine_or_gauge(problem: FitProblem, settings: FitSettings, run: _LatentRun,
                     on_step: Callable[[int, float], None] | None, prior: Tensor | None = None,
                     specular_level: Tensor | None = None
                     ) -> tuple[ReflectanceMaps, Tensor, ReflectanceMaps, Tensor | None, int, list[float]]:
    """The post-phase before the delighting: the optional albedo refinement (only without
    the delighting; kept when it beats the latent phase), then the gauge unless a refined
    result was kept. ``prior``: the level regressor's level for :func:`gauge_target`;
    ``specular_level`` ``[1, 1]``: the specular map's mean the gauge sets (None: as fitted).

    Returns:
        ``(maps, light, latent_maps, gauge_scale or None, best index, losses of both phases)``.
    """
    losses, best_idx, maps_b = list(run.losses), run.best_index, run.best_maps
    latent_maps = maps_b
    light_b, gauge, refined = run.best_z["light"], None, False
    if settings.refine_iterations > 0 and losses and settings.delight is None:
        maps_r, light_r, extra, best_extra = refine_albedo(problem, maps_b, light_b, settings,
                                                           on_step, start=len(losses))
        if best_extra is not None and extra[best_extra] < losses[best_idx]:
            best_idx = len(losses) + best_extra
            maps_b, light_b, refined = maps_r, light_r, True
        losses += extra
    if settings.albedo_gauge and not refined:
        target = gauge_target(maps_b, light_b, run.initial_maps, run.initial_light, problem.texture,
                              settings.gauge_light_weight, prior)
        maps_b, light_b, gauge = guarded_gauge(problem, maps_b, light_b, target, settings)
        if specular_level is not None:
            spec, _ = rescale_to_level(maps_b.specular, specular_level, problem.texture,
                                       fixed=eyes_fixed(maps_b.specular))
            maps_b = ReflectanceMaps(maps_b.albedo, spec, maps_b.normal)
        latent_maps = maps_b
    return maps_b, light_b, latent_maps, gauge, best_idx, losses


def prior_level(nets: ReflectanceNetworks, texture: Tensor, settings: FitSettings) -> Tensor | None:
    """The level regressor's albedo level ``[1, 3]`` when ``settings.gauge_level`` asks for
    it (``"regressor"``, or ``"auto"`` with networks that have one) and the gauge is on;
    None otherwise (the gauge then takes the encoders' level).

    Raises:
        InputError: ``gauge_level="regressor"`` with networks that have no level regressor.
    """
    if not settings.albedo_gauge or settings.gauge_level == "encoders":
        return None
    level = nets.albedo_level(texture)
    if level is None and settings.gauge_level == "regressor":
        raise InputError("fit.gauge_level=regressor needs networks with an albedo-level regressor "
                         "(level.safetensors, e.g. weights=data/checkpoints/cpu_x10); these have none: use fit.gauge_level=encoders")
    return level


def fit_latents(
    nets: ReflectanceNetworks,
    problem: FitProblem,
    settings: FitSettings = FitSettings(),
    on_step: Callable[[int, float], None] | None = None,
) -> FitResult:
    """Optimize the latent codes of one photo (equation 1), then the post-phase.

    The stages: encode; the latent loop (:func:`_latent_loop`); the refinement or the
    gauge (:func:`_refine_or_gauge`); the delighting (:mod:`facerefl.fit.delight`).

    Args:
        nets: frozen networks (eval-mode batch norm, no weight gradients).
        problem: the photo's texture, prepared G-buffer, target colours and loss mask.
        settings: optimizer settings.
        on_step: called after every evaluation with ``(iteration, loss)`` (progress bars,
            W&B logging).

    Returns:
        :class:`FitResult` holding the best iterate.
    """
    t0 = time.perf_counter()
    with torch.no_grad():
        code0 = nets.encode(problem.texture)
        prior = prior_level(nets, problem.texture, settings)
        spec_level = (nets.specular_mean(problem.texture)
                      if settings.albedo_gauge and settings.specular_gauge else None)
    t_encode = time.perf_counter() - t0
    run = _latent_loop(nets, problem, settings, code0, on_step)
    code_b = _code_from(code0, run.best_z)
    initial_maps, initial_light = run.initial_maps, run.initial_light
    latent_steps = len(run.losses)
    latent_best = run.losses[run.best_index] if run.losses else math.nan
    maps_b, light_b, latent_maps, gauge, best_idx, losses = _refine_or_gauge(problem, settings, run, on_step, prior,
                                                                                  spec_level)
    shading, out_of_range, t_delight = None, None, 0.0
    if settings.delight is not None and losses:
        t1 = time.perf_counter()
        d = delight_problem(problem, maps_b, light_b, settings, settings.delight)
        maps_b, light_b, shading, out_of_range = d.maps, d.light, d.shading, d.out_of_range
        t_delight = time.perf_counter() - t1
    maps_b = detail_maps(maps_b, float(problem.weight.sum()), settings.detail_max_size)
    seconds = time.perf_counter() - t0
    steps = max(len(losses) - 1, 1)
    return FitResult(
        maps=maps_b,
        light=light_b.detach(),
        initial_maps=initial_maps,
        initial_light=initial_light,
        code=code_b,
        losses=losses,
        best_iteration=best_idx,
        restorations=run.restorations,
        stopped_early=run.stopped_early,
        seconds=seconds,
        ms_per_iteration=1000.0 * seconds / steps,
        messages=run.messages,
        encode_seconds=t_encode,
        latent_steps=latent_steps,
        adam_steps=run.steps,
        latent_best_loss=latent_best,
        latent_maps=latent_maps,
        gauge_scale=gauge,
        shading=shading,
        delight_seconds=t_delight,
        out_of_range=out_of_range,
    )


def detail_maps(maps: ReflectanceMaps, face_pixels: float, max_size: int) -> ReflectanceMaps:
    """The specular and normal maps resampled to the side the face's pixel count calls for.

    The side is :func:`~facerefl.fit.delight.albedo_size` of ``face_pixels`` between the
    maps' own side and ``max_size`` (so never smaller than the networks made them; 0 keeps
    them). Bilinear, as the renderer samples them, so renders do not change; normals are
    renormalized. The albedo passes through (the delighting sizes it).

    Args:
        maps: specular ``[1, 1, Hs, Hs]`` in [0, 1], normal ``[1, 3, Hn, Hn]`` unit
            tangent-space vectors; albedo any size.
        face_pixels: pixels of the photo in the face region.
        max_size: the largest side to resample to.
    """
    out = []
    for t, normal in ((maps.specular, False), (maps.normal, True)):
        side = t.shape[-1]
        size = albedo_size(face_pixels, side, max_size) if max_size > side else side
        if size != side:
            t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
            t = F.normalize(t, dim=1) if normal else t.clamp(0, 1)
        out.append(t)
    if out[0] is maps.specular and out[1] is maps.normal:
        return maps
    return ReflectanceMaps(maps.albedo, *out)


def refine_albedo(
    problem: FitProblem,
    maps: ReflectanceMaps,
    light: Tensor,
    settings: FitSettings,
    on_step: Callable[[int, float], None] | None = None,
    start: int = 0,
) -> tuple[ReflectanceMaps, Tensor, list[float], int | None]:
    """Second phase (beyond the paper): refine the albedo texel by texel.

    The latent code can only express what the decoder and enhancer can draw at their
    output resolution; a photo has detail (pores, stubble, sharp lip and brow edges)
    finer than that. This phase upsamples the best decoded albedo to
    ``settings.refine_size``² and optimizes a residual ``δ`` (on a grid matched to the
    photo's sampling, :func:`residual_grid_size`, upsampled bilinearly) with Adam (step
    ``refine_lr``) on ``L2(render, photo) + refine_weight · mean(δ²)``, keeping the
    specular and normal maps fixed. The SH light moves too (step ``refine_light_lr``):
    with the light held, a too-dim latent-phase light leaves bright skin clamped at
    albedo 1 (Grace Hopper: 6.5% of texels, 29.8 dB; with the light free: 33.7 dB).
    Texels no pixel sees get no gradient and keep ``δ = 0``, so the refined map stays
    the network's prediction where the photo says nothing. Non-finite losses stop the
    phase (the best state so far is kept).

    Returns:
        The best maps (albedo replaced, ``[1, 3, S, S]`` in [0, 1]), the best light
        ``[1, 3, 9]``, the losses of this phase (one per evaluation), and the index of its
        best entry (None if none).
    """
    size = settings.refine_size
    base = F.interpolate(maps.albedo, size=(size, size), mode="bilinear", align_corners=False)
    base = base.clamp(0, 1).detach()
    grid = residual_grid_size(problem, size)
    delta = base.new_zeros(1, 3, grid, grid, requires_grad=True)
    light = light.detach().clone().requires_grad_(settings.refine_light_lr > 0)
    groups = [{"params": [delta], "lr": settings.refine_lr}]
    if settings.refine_light_lr > 0:
        groups.append({"params": [light], "lr": settings.refine_light_lr})
    opt = Adam(groups, betas=settings.betas)
    losses: list[float] = []
    best_val, best_i = math.inf, None
    best_delta, best_light = delta.detach().clone(), light.detach().clone()
    def full(d: Tensor) -> Tensor:
        return d if grid == size else F.interpolate(d, size=(size, size), mode="bilinear", align_corners=False)

    for i in range(settings.refine_iterations):
        albedo = (base + full(delta)).clamp(0, 1)
        data = fit_render_loss(problem, ReflectanceMaps(albedo, maps.specular, maps.normal), light, settings)
        value = float(data.detach())
        if not math.isfinite(value):
            break
        losses.append(value)
        if on_step is not None:
            on_step(start + i, value)
        if value < best_val:
            best_val, best_i = value, i
            best_delta, best_light = delta.detach().clone(), light.detach().clone()
        total = data + settings.refine_weight * delta.square().mean()
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
    albedo = (base + full(best_delta)).clamp(0, 1)
    return ReflectanceMaps(albedo, maps.specular, maps.normal), best_light, losses, best_i


def residual_grid_size(problem: FitProblem, max_size: int, min_size: int = 32) -> int:
    """Side of the albedo-residual grid: about one texel per face pixel.

    A residual finer than the photo samples it leaves texels that no pixel centre
    reaches between texels that do, and the refined map turns into a dotted grid. So
    the grid has as many texels over the valid-skin part of the UV layout as the face
    has pixels (``sqrt(P / f)``, ``f`` the skin fraction of the layout), clamped to
    ``[min_size, max_size]``; it is upsampled bilinearly onto the ``max_size`` map.
    """
    pixels = float(problem.weight.sum())
    frac = float(problem.texture[:, 3].mean().clamp(min=1e-3))
    return int(max(min_size, min(max_size, math.sqrt(pixels / frac))))
