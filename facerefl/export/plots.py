"""Loss curves (``loss.png``; the evaluation's Figure 5), ``metrics.json`` and the one
strict-JSON conversion (:func:`strict_json`) that the exports and the evaluation use.

Plots use Matplotlib's object API with the Agg canvas (no pyplot global state, no display).
"""

from __future__ import annotations

import io
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from facerefl.fsutil import atomic_write_bytes, atomic_write_json


def loss_curve_png(losses: Sequence[float] | Mapping[str, Sequence[float]], title: str = "reconstruction loss",
                   ylabel: str = "loss", dpi: int = 100) -> bytes:
    """PNG bytes of the loss against iteration (log scale when every value is positive).

    ``losses`` is one curve, or several by name (``{name: losses}``, a legend up to 12
    names; the evaluation's Figure 5). Non-finite values are dropped from the curves (and
    counted in the title).

    Raises:
        ValueError: ``losses`` holds no finite value.
    """
    curves = dict(losses) if isinstance(losses, Mapping) else {"": losses}
    pts = {name: [(i, float(v)) for i, v in enumerate(ls) if math.isfinite(float(v))]
           for name, ls in curves.items()}
    ys = [y for p in pts.values() for _, y in p]
    if not ys:
        raise ValueError("loss history holds no finite value; nothing to plot")
    dropped = sum(len(ls) for ls in curves.values()) - len(ys)
    fig = Figure(figsize=(6.0, 3.6), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    one = len(curves) == 1
    for name, p in pts.items():
        if p:
            ax.plot(*zip(*p), label=name or None, color="#1f5fa8" if one else None,
                    linewidth=1.5 if one else 1.2, marker="." if one and len(p) < 50 else None)
    if min(ys) > 0:
        ax.set_yscale("log")
        # plain "0.01" labels: the default "10^-2" ones go through mathtext, about a third
        # of the plot's time
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda y, _: _minor_log_label(y, ax.get_ylim())))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel)
    ax.set_title(title + (f" ({dropped} non-finite values omitted)" if dropped else ""))
    ax.grid(True, which="both", alpha=0.3)
    if not one and len(curves) <= 12:
        ax.legend(fontsize=7, ncol=2)
    # fixed margins rather than tight_layout(), which draws the figure once more to measure it
    fig.subplots_adjust(left=0.14, right=0.97, top=0.9, bottom=0.14)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _minor_log_label(y: float, ylim: tuple[float, float]) -> str:
    """Label of a minor tick of a log axis: ``2``, ``4``, ``6`` times a power of ten when the
    axis spans less than about one and a half decades (no major tick or one), else none."""
    lo, hi = sorted(ylim)
    if lo <= 0 or hi / lo > 30:
        return ""
    mantissa = y / 10 ** math.floor(math.log10(y) + 1e-9)
    return f"{y:g}" if round(mantissa) in (2, 4, 6) and abs(mantissa - round(mantissa)) < 1e-6 else ""


def save_loss_plot(path: str | os.PathLike, losses: Sequence[float] | Mapping[str, Sequence[float]],
                   title: str = "reconstruction loss", ylabel: str = "loss") -> Path:
    """Write :func:`loss_curve_png` (``loss.png``: loss against iteration) atomically."""
    return atomic_write_bytes(path, loss_curve_png(losses, title, ylabel))


def strict_json(obj: Any) -> Any:
    """``obj`` as strict JSON data: every non-finite number becomes None, through dicts,
    lists and tuples; other numbers become plain ``float`` or ``int`` (numpy and 0-d
    tensor scalars too); text, None and booleans are kept.

    >>> strict_json({"a": [float("inf"), 1.0, 2], "b": {"c": float("nan"), "d": "cpu"}})
    {'a': [None, 1.0, 2], 'b': {'c': None, 'd': 'cpu'}}
    """
    if obj is None or isinstance(obj, (str, bool)):
        return obj
    if isinstance(obj, Mapping):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    if getattr(obj, "ndim", None) == 0 and hasattr(obj, "item"):  # numpy / torch scalars
        return strict_json(obj.item())
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        v = float(obj)
        return v if math.isfinite(v) else None
    return obj


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
        "metrics": {str(k): strict_json(v) for k, v in metrics.items()},
        "timings_s": {str(k): strict_json(v) for k, v in timings.items()},
        "loss": {
            "iterations": len(losses),
            "first": strict_json(losses[0]) if len(losses) else None,
            "last": strict_json(losses[-1]) if len(losses) else None,
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
