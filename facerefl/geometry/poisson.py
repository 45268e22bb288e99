"""Hole filling by Poisson blending (Pérez et al. 2003; section 7.2.1 of the paper).

Unknown texels ``f`` inside a domain solve the discrete Poisson equation
``Σ_q (f_p − f_q) = Σ_q (g_p − g_q)`` over their 4-neighbours ``q`` in the domain, with
the known texels as Dirichlet boundary values and Neumann (no-flux) conditions where the
domain ends. ``g`` is an optional guidance image: its gradients are used where it is
valid at both texels, zero gradients elsewhere (a membrane fill). The sparse system is
factorized once (SuperLU) and solved for every channel.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

__all__ = ["poisson_fill"]

_OFFSETS = ((-1, 0), (1, 0), (0, -1), (0, 1))


def _shift(a: np.ndarray, di: int, dj: int, fill) -> np.ndarray:
    """``out[i, j] = a[i + di, j + dj]`` (``fill`` outside the array)."""
    out = np.full_like(a, fill)
    h, w = a.shape[:2]
    src = a[max(di, 0):h + min(di, 0), max(dj, 0):w + min(dj, 0)]
    out[max(-di, 0):h + min(-di, 0), max(-dj, 0):w + min(-dj, 0)] = src
    return out


def poisson_fill(image: np.ndarray, known: np.ndarray, domain: np.ndarray,
                 guide: np.ndarray | None = None, guide_valid: np.ndarray | None = None,
                 reg: float = 1e-6) -> np.ndarray:
    """Fill the texels of ``domain`` that are not ``known``.

    Args:
        image: ``[H, W, C]`` float values (only known texels are read).
        known: ``[H, W]`` bool, texels with trusted values (Dirichlet boundary).
        domain: ``[H, W]`` bool, where values are wanted; unknown = domain & ~known.
        guide: optional ``[H, W, C]`` guidance image whose gradients are reproduced.
        guide_valid: ``[H, W]`` bool where ``guide`` may be used (required with guide).
        reg: tiny pull towards the mean known value, which keeps regions that touch no
            known texel well posed.

    Returns:
        ``[H, W, C]`` float64: ``image`` on known texels, the Poisson solution on the
        unknown ones, 0 outside ``domain | known``.
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 3:
        raise ValueError(f"image must be [H, W, C], got {img.shape}")
    if known.shape != img.shape[:2] or domain.shape != img.shape[:2]:
        raise ValueError(f"masks must be {img.shape[:2]}, got {known.shape} and {domain.shape}")
    if guide is not None and (guide_valid is None or guide.shape != img.shape):
        raise ValueError("guide must match image and come with guide_valid")
    out = np.where(known[..., None], img, 0.0)
    unknown = domain & ~known
    n = int(unknown.sum())
    if n == 0:
        return out
    if not known.any():
        raise ValueError("poisson_fill needs at least one known texel")
    index = np.full(unknown.shape, -1, dtype=np.int64)
    index[unknown] = np.arange(n)
    rows, cols, vals = [], [], []
    diag = np.full(n, reg)
    rhs = np.zeros((n, img.shape[2]))
    rhs += reg * img[known].mean(0)
    ui = np.nonzero(unknown)
    for di, dj in _OFFSETS:
        nb_unknown = _shift(unknown, di, dj, False)[ui]
        nb_known = _shift(known, di, dj, False)[ui]
        inside = nb_unknown | nb_known  # neighbours outside both: Neumann, no term
        diag += inside
        sel = nb_unknown
        rows.append(np.nonzero(sel)[0])
        cols.append(_shift(index, di, dj, -1)[ui][sel])
        vals.append(np.full(int(sel.sum()), -1.0))
        rhs += np.where(nb_known[:, None], _shift(out, di, dj, 0.0)[ui], 0.0)
        if guide is not None:
            both = _shift(guide_valid, di, dj, False)[ui] & guide_valid[ui] & inside
            grad = guide[ui] - _shift(guide, di, dj, 0.0)[ui]
            rhs += np.where(both[:, None], grad, 0.0)
    rows.append(np.arange(n))
    cols.append(np.arange(n))
    vals.append(diag)
    a = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(n, n))
    sol = splu(a, permc_spec="COLAMD").solve(rhs)
    out[unknown] = sol
    return out
