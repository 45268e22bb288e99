"""Loss curve (``loss.png``) and ``metrics.json``.

Plots use Matplotlib's object API with the Agg canvas (no pyplot global state, no display).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from facerefl.fsutil import atomic_write_bytes, atomic_write_json


def loss_curve_png(losses: Sequence[float], title: str = "reconstruction loss", dpi: int = 100) -> bytes:
    """PNG bytes of the loss against iteration (log scale when every value is positive).

    Non-finite values are dropped from the curve (and counted in the title).

    Raises:
        ValueError: ``losses`` holds no finite value.
    """
    pts = [(i, float(v)) for i, v in enumerate(losses) if math.isfinite(float(v))]
    if not pts:
        raise ValueError("loss history holds no finite value; nothing to plot")
    dropped = len(losses) - len(pts)
    fig = Figure(figsize=(6.0, 3.6), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    xs, ys = zip(*pts)
    ax.plot(xs, ys, color="#1f5fa8", linewidth=1.5, marker="." if len(pts) < 50 else None)
    if min(ys) > 0:
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_title(title + (f" ({dropped} non-finite values omitted)" if dropped else ""))
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def save_loss_plot(path: str | os.PathLike, losses: Sequence[float]) -> Path:
    """Write ``loss.png`` (loss against iteration) atomically."""
    return atomic_write_bytes(path, loss_curve_png(losses))


def json_scalar(v: float | int | str | None) -> float | str | None:
    """A metric value as strict JSON: numbers as float (non-finite -> None), text kept."""
    if v is None or isinstance(v, str):
        return v
    v = float(v)
    return v if math.isfinite(v) else None


def metrics_document(
    metrics: Mapping[str, float | str], timings: Mapping[str, float], losses: Sequence[float] = (),
    extra: Mapping[str, Any] | None = None,
) -> dict:
    """JSON-ready ``{"metrics", "timings_s", "loss": {...}}``; non-finite numbers become null,
    text values (e.g. a device name) are kept. ``extra`` adds top-level sections (the
    run's resolved ``config`` and package ``versions``)."""
    finite = [float(v) for v in losses if math.isfinite(float(v))]
    return {
        **dict(extra or {}),
        "metrics": {str(k): json_scalar(v) for k, v in metrics.items()},
        "timings_s": {str(k): json_scalar(v) for k, v in timings.items()},
        "loss": {
            "iterations": len(losses),
            "first": json_scalar(losses[0]) if len(losses) else None,
            "last": json_scalar(losses[-1]) if len(losses) else None,
            "min": min(finite) if finite else None,
        },
    }


def save_metrics_json(
    path: str | os.PathLike,
    metrics: Mapping[str, float],
    timings: Mapping[str, float],
    losses: Sequence[float] = (),
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``metrics.json`` (see :func:`metrics_document`) atomically."""
    return atomic_write_json(path, metrics_document(metrics, timings, losses, extra))
