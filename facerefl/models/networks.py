"""The inference networks as one object, with the API the fitting stage uses.

``ReflectanceNetworks`` holds, for each reflectance kind, a :class:`ReflectanceBranch`
(encoder E_*, decoder D_*, detail enhancer R_*) and the SH light regressor. Fitting
(paper section 6) calls::

    nets = ReflectanceNetworks.load_shipped("cpu").freeze()   # eval-mode BN, no weight grads
    code = nets.encode(texture)                  # LatentCode: skips F^1..F^3 + z per kind, light
    z_a = code.albedo.z.clone().requires_grad_() # ... and z_s, z_n, light
    maps = nets.reflectance(code.with_z(albedo=z_a, ...), texture)   # R(D(F, z), T)

with the skips fixed. Weights are read from safetensors only (never unpickled); the
architecture is read from ``config.json`` in the same folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from facerefl.errors import InputError
from facerefl.models.components.autoencoder import ReflectanceAutoencoder
from facerefl.models.components.enhancer import DetailEnhancer
from facerefl.models.components.heads import KINDS, check_kind
from facerefl.models.components.light import SHRegressor

CONFIG_FILE = "config.json"
LIGHT_FILE = "light.safetensors"


@dataclass(frozen=True)
class BranchConfig:
    """Sizes of one E/D/R branch (see the constructors of the components)."""

    kind: str
    input_size: int
    latent_dim: int
    base_channels: int
    max_channels: int
    enhancer_scale: int
    enhancer_channels: int
    enhancer_blocks: int
    use_skips: bool = True

    @property
    def use_texture(self) -> bool:
        """R_s and R_n take T as extra channels; R_a does not (section 5.1.3)."""
        return self.kind != "albedo"

    @property
    def output_size(self) -> int:
        return self.input_size * self.enhancer_scale


@dataclass(frozen=True)
class LightConfig:
    input_size: int
    width: int


@dataclass(frozen=True)
class NetworksConfig:
    albedo: BranchConfig
    specular: BranchConfig
    normal: BranchConfig
    light: LightConfig

    @classmethod
    def from_dict(cls, d: dict) -> NetworksConfig:
        """From a mapping ``{albedo: {...}, specular: {...}, normal: {...}, light: {...}}``
        (the ``sizes`` node of a preset, or ``config.json``); ``kind`` may be omitted."""
        try:
            branches = {k: BranchConfig(**{"kind": k, **dict(d[k])}) for k in KINDS}
            return cls(**branches, light=LightConfig(**dict(d["light"])))
        except (KeyError, TypeError) as e:
            raise InputError(f"bad network size config ({e}); expected keys {KINDS + ('light',)}") from e

    def to_dict(self) -> dict:
        return asdict(self)

    def branch(self, kind: str) -> BranchConfig:
        return getattr(self, check_kind(kind))


@dataclass(frozen=True)
class BranchCode:
    """Encoder output of one branch: fixed skips and the latent vector to optimize.

    skips: (F^1, F^2, F^3), ``F^l`` ``[B, C_l, S/2^l, S/2^l]``; z: ``[B, latent_dim]``.
    """

    skips: tuple[torch.Tensor, ...]
    z: torch.Tensor

    def with_z(self, z: torch.Tensor) -> BranchCode:
        return replace(self, z=z)


@dataclass(frozen=True)
class LatentCode:
    """Everything the encoders give for a texture: one :class:`BranchCode` per kind and the
    regressed light ``[B, 3, 9]`` (linear radiance SH, camera frame; z_e = reshape(B, 27))."""

    albedo: BranchCode
    specular: BranchCode
    normal: BranchCode
    light: torch.Tensor

    def with_z(self, albedo=None, specular=None, normal=None, light=None) -> LatentCode:
        """Copy with some latents replaced (tensors; ``None`` keeps the current one)."""
        return LatentCode(
            albedo=self.albedo if albedo is None else self.albedo.with_z(albedo),
            specular=self.specular if specular is None else self.specular.with_z(specular),
            normal=self.normal if normal is None else self.normal.with_z(normal),
            light=self.light if light is None else light,
        )


@dataclass(frozen=True)
class ReflectanceMaps:
    """Reflectance in UV space (NCHW, row 0 = v 1).

    albedo: ``[B, 3, Ha, Ha]`` linear RGB in [0, 1]; specular: ``[B, 1, Hs, Hs]`` in [0, 1];
    normal: ``[B, 3, Hn, Hn]`` tangent-space unit vectors with z > 0.
    """

    albedo: torch.Tensor
    specular: torch.Tensor
    normal: torch.Tensor

    def get(self, kind: str) -> torch.Tensor:
        return getattr(self, check_kind(kind))


class ReflectanceBranch(nn.Module):
    """E_*, D_* and R_* of one kind. ``forward(texture)`` = ``enhance(decode(*encode(T)), T)``."""

    def __init__(self, cfg: BranchConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.autoencoder = ReflectanceAutoencoder(
            cfg.kind, cfg.input_size, cfg.latent_dim, cfg.base_channels, cfg.max_channels,
            cfg.use_skips,
        )
        self.enhancer = DetailEnhancer(
            cfg.kind, cfg.enhancer_scale, cfg.enhancer_channels, cfg.enhancer_blocks,
            cfg.use_texture,
        )

    def encode(self, texture: torch.Tensor) -> BranchCode:
        """T ``[B, 4, H, W]`` (sRGB + mask, any size) → :class:`BranchCode`."""
        skips, z = self.autoencoder.encode(texture)
        return BranchCode(tuple(skips), z)

    def decode(self, code: BranchCode) -> torch.Tensor:
        """→ coarse map ``[B, C, input_size, input_size]`` in the valid range."""
        return self.autoencoder.decode(list(code.skips), code.z)

    def enhance(self, coarse: torch.Tensor, texture: torch.Tensor) -> torch.Tensor:
        """Coarse map → ``[B, C, output_size, output_size]`` (T used by R_s, R_n only)."""
        return self.enhancer(coarse, texture)

    def forward(self, texture: torch.Tensor) -> torch.Tensor:
        return self.enhance(self.decode(self.encode(texture)), texture)


class ReflectanceNetworks(nn.Module):
    """All inference networks: ``albedo``/``specular``/``normal`` branches and ``light``."""

    def __init__(self, cfg: NetworksConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.albedo = ReflectanceBranch(cfg.albedo)
        self.specular = ReflectanceBranch(cfg.specular)
        self.normal = ReflectanceBranch(cfg.normal)
        self.light = SHRegressor(cfg.light.input_size, cfg.light.width)

    def branch(self, kind: str) -> ReflectanceBranch:
        return getattr(self, check_kind(kind))

    def freeze(self) -> ReflectanceNetworks:
        """Eval mode (batch norm uses running statistics) and no parameter gradients."""
        self.eval()
        self.requires_grad_(False)
        return self

    def encode(self, texture: torch.Tensor) -> LatentCode:
        """T ``[B, 4, H, W]`` (sRGB RGB in [0, 1] + mask) → :class:`LatentCode`."""
        return LatentCode(
            *(self.branch(k).encode(texture) for k in KINDS), light=self.light(texture)
        )

    def decode(self, code: LatentCode) -> ReflectanceMaps:
        """Decoder outputs (before detail enhancement)."""
        return ReflectanceMaps(*(self.branch(k).decode(getattr(code, k)) for k in KINDS))

    def enhance(self, coarse: ReflectanceMaps, texture: torch.Tensor) -> ReflectanceMaps:
        """Detail-enhanced maps from decoder outputs and T."""
        return ReflectanceMaps(
            *(self.branch(k).enhance(coarse.get(k), texture) for k in KINDS)
        )

    def reflectance(self, code: LatentCode, texture: torch.Tensor) -> ReflectanceMaps:
        """Eqs. (2)-(4): ``R(D(F, z), T)`` for every kind."""
        return self.enhance(self.decode(code), texture)

    def forward(self, texture: torch.Tensor) -> tuple[ReflectanceMaps, torch.Tensor]:
        code = self.encode(texture)
        return self.reflectance(code, texture), code.light

    # ------------------------------------------------------------------ weights I/O
    def save_safetensors(self, folder: Path, extra: dict | None = None) -> None:
        """Write ``config.json``, ``<kind>.safetensors`` and ``light.safetensors`` atomically."""
        from facerefl.models.serialization import save_state_atomic, write_text_atomic

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for k in KINDS:
            save_state_atomic(self.branch(k).state_dict(), folder / f"{k}.safetensors")
        save_state_atomic(self.light.state_dict(), folder / LIGHT_FILE)
        cfg = {**self.cfg.to_dict(), **({"extra": extra} if extra else {})}
        write_text_atomic(folder / CONFIG_FILE, json.dumps(cfg, indent=2) + "\n")

    @classmethod
    def from_safetensors(cls, folder: str | Path, map_location: str | torch.device = "cpu") -> ReflectanceNetworks:
        """Build from a folder written by :meth:`save_safetensors` (safetensors only)."""
        folder = Path(folder)
        cfg_path = folder / CONFIG_FILE
        if not cfg_path.is_file():
            raise InputError(
                f"no {CONFIG_FILE} in {folder}; point at a folder written by "
                "ReflectanceNetworks.save_safetensors (e.g. data/checkpoints/cpu) or run `make train`"
            )
        raw = json.loads(cfg_path.read_text(encoding="utf-8"))
        raw.pop("extra", None)
        nets = cls(NetworksConfig.from_dict(raw))
        device = str(map_location)
        for k in KINDS:
            nets.branch(k).load_state_dict(_load(folder / f"{k}.safetensors", device))
        nets.light.load_state_dict(_load(folder / LIGHT_FILE, device))
        return nets.to(map_location)

    @classmethod
    def load_shipped(cls, preset: str = "cpu") -> ReflectanceNetworks:
        """The weights committed under ``data/checkpoints/<preset>/`` (see :func:`shipped_dir`)."""
        return cls.from_safetensors(shipped_dir(preset))


def _load(path: Path, device: str) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise InputError(f"missing weights file {path}; re-export the checkpoint folder")
    return load_file(str(path), device=device)


def shipped_dir(preset: str) -> Path:
    """Folder of the shipped weights of ``preset``: ``$FACEREFL_CHECKPOINTS/<preset>`` if set,
    else ``data/checkpoints/<preset>`` in the source tree that holds this package."""
    root = os.environ.get("FACEREFL_CHECKPOINTS")
    base = Path(root) if root else Path(__file__).resolve().parents[2] / "data" / "checkpoints"
    folder = base / preset
    if not (folder / CONFIG_FILE).is_file():
        raise InputError(
            f"no shipped weights for preset {preset!r} in {base}; available: "
            f"{sorted(p.name for p in base.glob('*') if (p / CONFIG_FILE).is_file())}; "
            "train them with `make train` or set FACEREFL_CHECKPOINTS"
        )
    return folder
