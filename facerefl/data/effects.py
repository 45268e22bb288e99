"""Switchable realism effects of the synthetic faces: what they are and how often they occur.

Two kinds (issue 13, part 2):

* **surface** effects change the face's reflectance, so the target maps show them too:
  teeth in the mouth, stubble, makeup (:mod:`facerefl.data.surface`);
* **photo** effects change the photo only; the targets keep the skin underneath, so the
  networks learn to see through them: hair over the forehead and temples
  (:mod:`facerefl.data.surface`, on a copy of the maps used only for rendering), glasses
  and hard sunlight with cast shadows (:mod:`facerefl.data.occluders`), and camera effects
  (blur, vignetting, stronger noise, sharpening, chroma subsampling;
  :mod:`facerefl.data.sensor`).

Every effect has its own probability ``p`` and ranges in a frozen dataclass, and draws
from its own random stream (a stage of :func:`facerefl.data.assemble.stage_rng`), so
switching one effect on or off changes no other effect's draws, and with every ``p = 0``
an example is bit-identical to one made before the effects existed.
:class:`EffectSettings` ``()`` is the training distribution; :meth:`EffectSettings.off`
is the test set's (none). Ranges are ``(lo, hi)`` drawn uniformly unless stated.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TeethSettings:
    """Teeth between parted lips (surface).

    Attributes:
        p: probability per face.
        opening: height of the visible teeth as a fraction of the lips' height.
        shade: teeth albedo (linear luminance).
    """

    p: float = 0.3
    opening: tuple[float, float] = (0.15, 0.5)
    shade: tuple[float, float] = (0.35, 0.65)


@dataclass(frozen=True)
class StubbleSettings:
    """Short beard hairs: fine dark dots over the beard and moustache zone (surface).

    Attributes:
        p: probability per face (faces with a full beard keep it instead).
        density: fraction of zone texels that hold a hair.
        strength: opacity of one hair.
        shadow: darkening of the whole zone (the "five o'clock shadow").
    """

    p: float = 0.25
    density: tuple[float, float] = (0.15, 0.5)
    strength: tuple[float, float] = (0.2, 0.6)
    shadow: tuple[float, float] = (0.03, 0.15)


@dataclass(frozen=True)
class MakeupSettings:
    """Makeup (surface). Given makeup, each item is present with its own probability.

    Attributes:
        p: probability per face.
        lipstick, eyeshadow, eyeliner, foundation, blush: probability of each item.
        opacity: opacity of one item.
    """

    p: float = 0.3
    lipstick: float = 0.6
    eyeshadow: float = 0.5
    eyeliner: float = 0.5
    foundation: float = 0.6
    blush: float = 0.4
    opacity: tuple[float, float] = (0.3, 0.9)


@dataclass(frozen=True)
class HairSettings:
    """Hair over the forehead and temples (photo only).

    Attributes:
        p: probability per face.
        fringe: probability of a fringe (bangs), given hair.
        fringe_depth: how far down the fringe reaches, as a fraction of the
            forehead-top-to-brow distance (above 1 it covers the brows).
        temples: probability of hair over the temples, given hair.
        strands: number of loose strands across the forehead.
    """

    p: float = 0.35
    fringe: float = 0.6
    fringe_depth: tuple[float, float] = (0.2, 1.1)
    temples: float = 0.6
    strands: tuple[int, int] = (0, 25)


@dataclass(frozen=True)
class GlassesSettings:
    """Glasses (photo only): frames, lenses, the frames' shadow on the face.

    Attributes:
        p: probability per face.
        frame_cm: frame thickness (cm).
        tinted: probability of tinted (sun) lenses.
        transmission: luminance transmission of tinted lenses.
        reflection: fraction of the ambient light the lens reflects.
        shadow: darkness of the frames' cast shadow (under soft light; a sun's is sharp
            and as dark as the sun's share of the light).
    """

    p: float = 0.2
    frame_cm: tuple[float, float] = (0.08, 0.45)
    tinted: float = 0.3
    transmission: tuple[float, float] = (0.15, 0.6)
    reflection: tuple[float, float] = (0.0, 0.06)
    shadow: tuple[float, float] = (0.15, 0.5)


@dataclass(frozen=True)
class SunSettings:
    """A directional light with ray-cast hard shadows (photo; the SH light includes it).

    The sun's SH projection is added to the light's, and sun and environment are scaled
    together by ``1 / (1 + ratio / 2)`` to keep the exposure about the same.

    Attributes:
        p: probability per photo.
        ratio: sun irradiance over the environment's mean irradiance (log-uniform).
        elevation_deg: sun elevation above the camera's horizontal plane.
        azimuth_deg: largest angle of the sun from the camera's side of the head, about
            the vertical.
        softness_px: std-dev of the shadow-edge blur, pixels.
    """

    p: float = 0.35
    ratio: tuple[float, float] = (0.5, 4.0)
    elevation_deg: tuple[float, float] = (0.0, 70.0)
    azimuth_deg: float = 110.0
    softness_px: tuple[float, float] = (0.4, 1.5)


@dataclass(frozen=True)
class CameraSettings:
    """Camera effects beyond the base sensor model (photo only). Given the effect, each
    item is present with its own probability.

    Attributes:
        p: probability per photo.
        defocus, motion, vignetting, noise, sharpen, chroma: probability of each item.
        defocus_px: Gaussian defocus blur std-dev, pixels.
        motion_px: motion-blur streak length, pixels.
        vignetting_strength: light lost at the image corners.
        noise_gain: factor on the noise std-dev (photon count / gain², read noise x gain).
        sharpen_amount: unsharp-mask amount (sRGB).
        sharpen_px: unsharp-mask radius (std-dev, pixels).
    """

    p: float = 0.6
    defocus: float = 0.4
    motion: float = 0.2
    vignetting: float = 0.4
    noise: float = 0.5
    sharpen: float = 0.4
    chroma: float = 0.5
    defocus_px: tuple[float, float] = (0.4, 1.6)
    motion_px: tuple[float, float] = (1.5, 5.0)
    vignetting_strength: tuple[float, float] = (0.1, 0.45)
    noise_gain: tuple[float, float] = (1.0, 2.5)
    sharpen_amount: tuple[float, float] = (0.3, 1.2)
    sharpen_px: tuple[float, float] = (0.6, 1.5)


#: Effect names in the order they are applied; each is a field of :class:`EffectSettings`
#: and a random stage of its own.
SURFACE_EFFECTS = ("stubble", "makeup", "teeth")
PHOTO_EFFECTS = ("hair", "sun", "glasses", "camera")
EFFECTS = SURFACE_EFFECTS + PHOTO_EFFECTS


@dataclass(frozen=True)
class EffectSettings:
    """Probabilities and ranges of every effect (default: the training distribution)."""

    stubble: StubbleSettings = field(default_factory=StubbleSettings)
    makeup: MakeupSettings = field(default_factory=MakeupSettings)
    teeth: TeethSettings = field(default_factory=TeethSettings)
    hair: HairSettings = field(default_factory=HairSettings)
    sun: SunSettings = field(default_factory=SunSettings)
    glasses: GlassesSettings = field(default_factory=GlassesSettings)
    camera: CameraSettings = field(default_factory=CameraSettings)

    def __post_init__(self) -> None:
        for name in EFFECTS:
            p = getattr(self, name).p
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"effects.{name}.p must be in [0, 1], got {p}")

    @classmethod
    def off(cls) -> "EffectSettings":
        """Every effect switched off (the test set; the examples made before issue 13)."""
        return cls().only()

    def only(self, *names: str) -> "EffectSettings":
        """These settings with every effect but ``names`` switched off."""
        unknown = set(names) - set(EFFECTS)
        if unknown:
            raise ValueError(f"unknown effects {sorted(unknown)}; known: {EFFECTS}")
        return dataclasses.replace(self, **{
            n: dataclasses.replace(getattr(self, n), p=0.0) for n in EFFECTS if n not in names})

    def with_p(self, name: str, p: float) -> "EffectSettings":
        """These settings with effect ``name``'s probability set to ``p`` (e.g. 1 to force it)."""
        if name not in EFFECTS:
            raise ValueError(f"unknown effect {name!r}; known: {EFFECTS}")
        return dataclasses.replace(self, **{name: dataclasses.replace(getattr(self, name), p=p)})

    @property
    def enabled(self) -> tuple[str, ...]:
        """Names of the effects with a non-zero probability."""
        return tuple(n for n in EFFECTS if getattr(self, n).p > 0)
