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

A checkpoint folder may borrow tensors from a *base* folder instead of repeating them (e.g.
``cpu_noskip``, whose detail enhancers and light regressor are ``cpu``'s)::

    "base": {"folder": "../cpu",                                  # relative to this folder
             "sha256": {"albedo.safetensors": "<hex>", ...}}      # base files borrowed from

Each weight file's tensors are then the base file's, overridden by the tensors of the local
file of the same name (which may be absent when nothing differs). The digests pin the base
files: a changed base is refused rather than silently mixed in. Bases do not chain.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from facerefl.assets import sha256_file
from facerefl.errors import InputError
from facerefl.fsutil import atomic_write_text
from facerefl.models.components.autoencoder import ReflectanceAutoencoder
from facerefl.models.components.enhancer import DetailEnhancer
from facerefl.models.components.heads import KINDS, check_kind
from facerefl.models.components.level import AlbedoLevelRegressor
from facerefl.models.components.light import SHRegressor
from facerefl.models.serialization import save_state_atomic
from facerefl.render.maps import ReflectanceMaps
from facerefl.render.sh import sh_mirror_x
from facerefl.resources import CHECKPOINTS_DIR

CONFIG_FILE = "config.json"
LIGHT_FILE = "light.safetensors"
#: The optional albedo-level regressor's weights (checkpoints whose config names ``level``).
LEVEL_FILE = "level.safetensors"
#: The optional specular-level regressor's weights (config key ``specular_level``).
SPECULAR_LEVEL_FILE = "specular_level.safetensors"
#: The weight files a checkpoint folder may hold (one per branch, the light regressor, and
#: the level regressors where the config has them).
WEIGHT_FILES = tuple(f"{k}.safetensors" for k in KINDS) + (LIGHT_FILE, LEVEL_FILE, SPECULAR_LEVEL_FILE)
#: ``config.json`` key naming the base folder a checkpoint borrows tensors from.
BASE_KEY = "base"


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
    """Sizes of every network; ``level`` (the albedo-level regressor, beyond the paper) and
    ``specular_level`` (the same body trained for the specular map's mean over the skin)
    are optional: checkpoints trained before them have none.

    ``mirror_average`` (beyond the paper): the light and level regressors are also run on T
    flipped along u, and the two answers averaged (the lighting mirrored back with
    :func:`~facerefl.render.sh.sh_mirror_x`, the levels in log space). The template's UV
    layout is symmetric, so the flipped T is the mirrored scene. Off unless a checkpoint's
    ``config.json`` turns it on.
    """

    albedo: BranchConfig
    specular: BranchConfig
    normal: BranchConfig
    light: LightConfig
    level: LightConfig | None = None
    mirror_average: bool = False
    specular_level: LightConfig | None = None

    @classmethod
    def from_dict(cls, d: dict) -> NetworksConfig:
        """From a mapping ``{albedo: {...}, specular: {...}, normal: {...}, light: {...}}``
        and optionally ``level: {...}`` (the ``sizes`` node of a preset, or ``config.json``);
        ``kind`` may be omitted."""
        try:
            branches = {k: BranchConfig(**{"kind": k, **dict(d[k])}) for k in KINDS}
            level, spec = d.get("level"), d.get("specular_level")
            return cls(**branches, light=LightConfig(**dict(d["light"])),
                       level=None if level is None else LightConfig(**dict(level)),
                       mirror_average=bool(d.get("mirror_average", False)),
                       specular_level=None if spec is None else LightConfig(**dict(spec)))
        except (KeyError, TypeError) as e:
            raise InputError(f"bad network size config ({e}); expected keys {KINDS + ('light',)}") from e

    def to_dict(self) -> dict:
        d = asdict(self)
        if self.level is None:
            del d["level"]
        if self.specular_level is None:
            del d["specular_level"]
        if not self.mirror_average:
            del d["mirror_average"]  # configs written before it stay as they were
        return d

    def without_level(self) -> NetworksConfig:
        """The same sizes less the level regressor (to compare with older checkpoints)."""
        return replace(self, level=None)

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
        self.level = None if cfg.level is None else AlbedoLevelRegressor(cfg.level.input_size, cfg.level.width)
        spec = cfg.specular_level
        self.specular_level = None if spec is None else AlbedoLevelRegressor(spec.input_size, spec.width, channels=1)

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
            *(self.branch(k).encode(texture) for k in KINDS), light=self.lighting(texture)
        )

    def lighting(self, texture: torch.Tensor) -> torch.Tensor:
        """The light regressor's SH lighting ``[B, 3, 9]`` (linear RGB, camera frame) for T,
        averaged with its mirrored answer when ``cfg.mirror_average``."""
        light = self.light(texture)
        if self.cfg.mirror_average:
            light = 0.5 * (light + sh_mirror_x(self.light(texture.flip(-1))))
        return light

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

    def albedo_level(self, texture: torch.Tensor) -> torch.Tensor | None:
        """The level regressor's mean skin albedo ``[B, 3]`` (linear) for T, or None when
        these networks have no level regressor. With ``cfg.mirror_average`` the geometric
        mean of the answers for T and for T flipped along u."""
        return self._mirrored_level(self.level, texture)

    def specular_mean(self, texture: torch.Tensor) -> torch.Tensor | None:
        """The specular-level regressor's mean specular intensity over the valid skin
        ``[B, 1]`` for T (mirror-averaged as :meth:`albedo_level`), or None when these
        networks have none."""
        return self._mirrored_level(self.specular_level, texture)

    def _mirrored_level(self, net: AlbedoLevelRegressor | None, texture: torch.Tensor) -> torch.Tensor | None:
        if net is None:
            return None
        log_level = net(texture)
        if self.cfg.mirror_average:
            log_level = 0.5 * (log_level + net(texture.flip(-1)))
        return log_level.exp()

    # ------------------------------------------------------------------ weights I/O
    def _weight_states(self) -> dict[str, dict[str, torch.Tensor]]:
        """State dicts by weight file name (:data:`WEIGHT_FILES`)."""
        return {name: module.state_dict() for name, module in self._weight_modules().items()}

    def _weight_modules(self) -> dict[str, nn.Module]:
        mods: dict[str, nn.Module] = {**{f"{k}.safetensors": self.branch(k) for k in KINDS}, LIGHT_FILE: self.light}
        if self.level is not None:
            mods[LEVEL_FILE] = self.level
        if self.specular_level is not None:
            mods[SPECULAR_LEVEL_FILE] = self.specular_level
        return mods

    def save_safetensors(self, folder: Path, extra: dict | None = None, base: Path | None = None) -> None:
        """Write ``config.json``, ``<kind>.safetensors``, ``light.safetensors`` (and
        ``level.safetensors`` with a level regressor) atomically.

        With ``base`` (a folder written by this method, with no base of its own), tensors
        equal to the base's are left out and ``config.json`` names the base (see the module
        docstring); a weight file whose tensors all match is not written (and an older copy
        of it in ``folder`` is removed). A base file holding tensors this network lacks is
        not borrowed from.
        """
        folder = Path(folder)
        if base is not None:
            base = Path(base)
            _check_base_folder(base, folder)
        folder.mkdir(parents=True, exist_ok=True)
        states, borrowed = self._weight_states(), {}
        if base is not None:
            for name, state in states.items():
                path = base / name
                if not path.is_file():
                    continue
                theirs = load_file(str(path))
                if not set(theirs) <= set(state):
                    continue
                own = {n: t for n, t in state.items() if n not in theirs or not _same(t, theirs[n])}
                if len(own) < len(state):
                    borrowed[name] = sha256_file(path)
                    states[name] = own
        for name, state in states.items():
            if state:
                save_state_atomic(state, folder / name)
            elif (folder / name).exists():
                (folder / name).unlink()
        cfg = self.cfg.to_dict()
        if borrowed:
            rel = os.path.relpath(Path(base).resolve(), folder.resolve())
            cfg[BASE_KEY] = {"folder": Path(rel).as_posix(), "sha256": borrowed}
        if extra:
            cfg["extra"] = extra
        atomic_write_text(folder / CONFIG_FILE, json.dumps(cfg, indent=2) + "\n")

    @classmethod
    def from_safetensors(cls, folder: str | Path, map_location: str | torch.device = "cpu") -> ReflectanceNetworks:
        """Build from a folder written by :meth:`save_safetensors` (safetensors only), filling
        in tensors borrowed from its base folder, if any (see the module docstring)."""
        folder = Path(folder)
        raw = _read_config(folder)
        raw.pop("extra", None)
        borrowed = _base_files(folder, raw.pop(BASE_KEY, None))
        nets = cls(NetworksConfig.from_dict(raw))
        device = str(map_location)
        for name, module in nets._weight_modules().items():
            local = folder / name
            if name not in borrowed and not local.is_file():
                raise InputError(f"missing weights file {local}; re-export the checkpoint folder")
            state = load_file(str(borrowed[name]), device=device) if name in borrowed else {}
            if local.is_file():
                state.update(load_file(str(local), device=device))
            try:
                module.load_state_dict(state)
            except RuntimeError as e:
                src = f"{local}" + (f" with base {borrowed[name]}" if name in borrowed else "")
                raise InputError(f"weights {src} do not fit {folder / CONFIG_FILE}: {e}") from e
        return nets.to(map_location)

    @classmethod
    def load_shipped(cls, preset: str = "cpu") -> ReflectanceNetworks:
        """The weights committed under ``data/checkpoints/<preset>/`` (see :func:`shipped_dir`)."""
        return cls.from_safetensors(shipped_dir(preset))


def _read_config(folder: Path) -> dict:
    cfg_path = folder / CONFIG_FILE
    if not cfg_path.is_file():
        raise InputError(
            f"no {CONFIG_FILE} in {folder}; point at a folder written by "
            "ReflectanceNetworks.save_safetensors (e.g. data/checkpoints/cpu) or run `make train`"
        )
    raw = json.loads(cfg_path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise InputError(f"{cfg_path} must hold a JSON object")
    return raw


def _check_base_folder(base: Path, folder: Path) -> None:
    """A usable base for ``folder``: a checkpoint folder other than ``folder``, with no base."""
    if base.resolve() == folder.resolve():
        raise InputError(f"checkpoint folder {folder} names itself as its base")
    if BASE_KEY in _read_config(base):
        raise InputError(f"base folder {base} has a base of its own; bases do not chain "
                         "(use the folder that holds the full weights)")


def _base_files(folder: Path, entry) -> dict[str, Path]:
    """Validate the ``base`` entry of ``folder``'s config; → {weight file: path in the base}."""
    if entry is None:
        return {}
    form = ('expected "base": {"folder": "<path relative to this folder>", '
            '"sha256": {"<weight file>": "<hex digest>", ...}}')
    digests = entry.get("sha256") if isinstance(entry, dict) else None
    if (not isinstance(entry, dict) or set(entry) != {"folder", "sha256"}
            or not isinstance(entry["folder"], str) or not entry["folder"]
            or not isinstance(digests, dict) or not digests
            or not all(isinstance(v, str) for v in digests.values())):
        raise InputError(f"bad {BASE_KEY!r} entry in {folder / CONFIG_FILE}: {entry!r}; {form}")
    unknown = sorted(set(digests) - set(WEIGHT_FILES))
    if unknown:
        raise InputError(f"{folder / CONFIG_FILE} borrows unknown files {unknown} from its base; "
                         f"weight files are {list(WEIGHT_FILES)}")
    base = folder / entry["folder"]
    try:
        _check_base_folder(base, folder)
    except InputError as e:
        raise InputError(f"{e} (base of {folder}); restore the base folder or re-export {folder}") from None
    files = {}
    for name, digest in digests.items():
        path = base / name
        if not path.is_file():
            raise InputError(f"{folder} borrows {name} from {base}, which lacks it; restore "
                             f"the base folder or re-export {folder}")
        if sha256_file(path) != digest:
            raise InputError(f"{path} changed since {folder} was exported from it (sha256 differs); "
                             f"restore that file or re-export {folder} against the new base")
        files[name] = path
    return files


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(a.detach().cpu(), b)


def shipped_dir(preset: str) -> Path:
    """Folder of the shipped weights of ``preset``: ``$FACEREFL_CHECKPOINTS/<preset>`` if set,
    else the weights shipped in the package (:data:`facerefl.resources.CHECKPOINTS_DIR`)."""
    root = os.environ.get("FACEREFL_CHECKPOINTS")
    base = Path(root) if root else CHECKPOINTS_DIR
    folder = base / preset
    if not (folder / CONFIG_FILE).is_file():
        raise InputError(
            f"no shipped weights for preset {preset!r} in {base}; available: "
            f"{sorted(p.name for p in base.glob('*') if (p / CONFIG_FILE).is_file())}; "
            "train them with `make train` or set FACEREFL_CHECKPOINTS"
        )
    return folder
