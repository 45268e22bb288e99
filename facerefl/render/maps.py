"""UV-space reflectance maps: the one container the networks, the fit and the exports share.

A *kind* names a reflectance component; it fixes the number of channels:

>>> KINDS, [map_channels(k) for k in KINDS]
(('albedo', 'specular', 'normal'), [3, 1, 3])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

#: The reflectance kinds, in the order of :class:`ReflectanceMaps`' fields.
KINDS: tuple[str, ...] = ("albedo", "specular", "normal")
_CHANNELS = {"albedo": 3, "specular": 1, "normal": 3}


def check_kind(kind: str) -> str:
    """Return ``kind`` if it is a known reflectance kind, else raise ``ValueError``."""
    if kind not in _CHANNELS:
        raise ValueError(f"unknown reflectance kind {kind!r}; use one of {KINDS}")
    return kind


def map_channels(kind: str) -> int:
    """Number of channels of a map of this kind (3, 1 or 3)."""
    return _CHANNELS[check_kind(kind)]


@dataclass(frozen=True)
class ReflectanceMaps:
    """Reflectance of a face in UV space (row 0 = the top of the texture, v = 1).

    Two layouts, one per use: a batch ``[B, C, H, W]`` (NCHW; what the networks give and
    the fit optimizes) or one face ``[C, H, W]`` (what the exporters write; take it out of
    a batch with :meth:`face`). All three maps have the same rank and, batched, the same
    ``B``; their sizes may differ.

    Attributes:
        albedo: ``[B, 3, Ha, Wa]`` or ``[3, Ha, Wa]``, linear RGB in [0, 1].
        specular: ``[B, 1, Hs, Ws]`` or ``[1, Hs, Ws]``, linear specular intensity t_r in [0, 1].
        normal: ``[B, 3, Hn, Wn]`` or ``[3, Hn, Wn]``, tangent-space unit vectors with z > 0
            (x along T, y along B, z along N).

    Raises:
        ValueError: a map is not a tensor of that shape, or the ranks or batch sizes differ.

    >>> maps = ReflectanceMaps(torch.rand(2, 3, 8, 8), torch.rand(2, 1, 4, 4), torch.rand(2, 3, 4, 4))
    >>> maps.batched, tuple(maps.face(1).specular.shape)
    (True, (1, 4, 4))
    """

    albedo: torch.Tensor
    specular: torch.Tensor
    normal: torch.Tensor

    def __post_init__(self) -> None:
        leads = set()
        for kind in KINDS:
            t, ch = getattr(self, kind), map_channels(kind)
            if not isinstance(t, torch.Tensor) or t.ndim not in (3, 4) or t.shape[-3] != ch:
                shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise ValueError(f"{kind} must be a [B, {ch}, H, W] or [{ch}, H, W] tensor, got {shape}")
            leads.add(tuple(t.shape[:-3]))
        if len(leads) > 1:
            raise ValueError(f"albedo, specular and normal must all be batched alike, got leading shapes "
                             f"{[tuple(getattr(self, k).shape[:-3]) for k in KINDS]}")

    @property
    def batched(self) -> bool:
        """True for ``[B, C, H, W]`` maps, False for one face's ``[C, H, W]``."""
        return self.albedo.ndim == 4

    def get(self, kind: str) -> torch.Tensor:
        """The map of ``kind`` (``"albedo"``, ``"specular"`` or ``"normal"``)."""
        return getattr(self, check_kind(kind))

    def detach(self) -> ReflectanceMaps:
        """The same maps, detached from the autograd graph."""
        return ReflectanceMaps(*(self.get(k).detach() for k in KINDS))

    def face(self, index: int = 0) -> ReflectanceMaps:
        """Face ``index`` of a batch as ``[C, H, W]`` maps, detached.

        Raises:
            ValueError: the maps are one face already.
        """
        if not self.batched:
            raise ValueError("face() takes one face out of [B, C, H, W] maps; these are [C, H, W] already")
        return ReflectanceMaps(*(self.get(k)[index].detach() for k in KINDS))
