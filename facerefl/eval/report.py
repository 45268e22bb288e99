"""Markdown tables of the evaluation and the gather step of an ablation sweep.

Each evaluation job writes ``results.json`` (:func:`results_document`); :func:`gather`
reads every ``results.json`` under a sweep folder and writes ``ablation.md`` and
``ablation.json`` next to them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from facerefl.errors import InputError
from facerefl.eval.compare import TABLE1_COLUMNS
from facerefl.export.plots import strict_json
from facerefl.fsutil import atomic_write_json, atomic_write_text

__all__ = ["PAPER_TABLE1", "DEFINITIONS", "table1_markdown", "ablation_markdown", "gather",
           "ABLATION_ORDER", "RESULTS_FILE"]

RESULTS_FILE = "results.json"
#: Table 1 of the paper (100 synthetic test images).
PAPER_TABLE1 = {
    "psnr": {"albedo": 25.10, "normal": 26.61, "specular": 22.68, "light": 20.29},
    "rmse": {"albedo": 0.07, "normal": 0.06, "specular": 0.08, "light": 0.11},
}
ABLATION_ORDER = ("full", "no_skip", "no_renderer", "no_enhancer")

DEFINITIONS = """\
Definitions. PSNR = 10·log10(1/MSE) dB and RMSE = sqrt(MSE), peak 1, averaged per example
then over the examples that the pipeline fitted. Maps are compared in UV space at the
ground truth's resolution over the template's valid skin region (face oval minus eyes,
brows and inner mouth; every such texel, seen in the photo or not). Albedo: sRGB-encoded
values. Normal: encoded (n+1)/2 tangent-space values. Specular: intensity t_r. Light: a
white Lambertian sphere seen from the camera, shaded by the SH light (E(n)/π, linear),
both probes divided by the ground-truth probe's maximum. "Scale-aligned": the estimated
albedo times the per-channel least-squares scale that best matches the true albedo
(linear), and the estimated light divided by the same scale (the albedo–light ambiguity).
Image PSNR/SSIM: the reconstruction against the input photo over the face region (sRGB).
"""


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v + 0.0:.{digits}f}"


def _cell(summary: dict, table: str, column: str, metric: str) -> Any:
    return summary.get(table, {}).get(column, {}).get(metric)


def table1_markdown(summary: dict, title: str = "Table 1") -> str:
    """Table 1 (ours next to the paper) from a :func:`~facerefl.eval.synthetic.summarize` dict."""
    head = [f"| {title} (n = {summary['ok']} of {summary['count']}) | Albedo | Normal | Specular | Light |",
            "|---|---|---|---|---|"]
    rows = []
    for metric, digits in (("psnr", 2), ("rmse", 3)):
        name = metric.upper()
        rows.append(f"| {name} ours | " + " | ".join(
            _fmt(_cell(summary, "scores", c, metric), digits) for c in TABLE1_COLUMNS) + " |")
        rows.append(f"| {name} paper | " + " | ".join(
            _fmt(PAPER_TABLE1[metric][c], 2) for c in TABLE1_COLUMNS) + " |")
    for metric, digits in (("psnr", 2), ("rmse", 3)):
        al = [_cell(summary, "scores", "albedo_aligned", metric), None, None,
              _cell(summary, "scores", "light_aligned", metric)]
        rows.append(f"| {metric.upper()} ours, scale-aligned | " + " | ".join(_fmt(v, digits) for v in al) + " |")
    if summary.get("paper_scores"):
        for metric, digits in (("psnr", 2), ("rmse", 3)):
            rows.append(f"| {metric.upper()} ours, latent phase (no delighting) | " + " | ".join(
                _fmt(_cell(summary, "paper_scores", c, metric), digits) for c in TABLE1_COLUMNS) + " |")
        rows.append("| PSNR ours, latent phase, scale-aligned | " + " | ".join(_fmt(v) for v in (
            _cell(summary, "paper_scores", "albedo_aligned", "psnr"), None, None,
            _cell(summary, "paper_scores", "light_aligned", "psnr"))) + " |")
    flat = summary.get("flat_normal") or {}
    if flat:
        rows.append(f"| PSNR flat normals (0, 0, 1), baseline | | {_fmt(flat.get('psnr'))} | | |")
    rows.append("| PSNR encoders only (iteration 0) | " + " | ".join(
        _fmt(_cell(summary, "initial_scores", c, "psnr")) for c in TABLE1_COLUMNS) + " |")
    extra = [
        f"Albedo PSNR in linear RGB: {_fmt(_cell(summary, 'scores', 'albedo_linear', 'psnr'))} dB; "
        f"mean normal angle: {_fmt(summary.get('scores', {}).get('normal_angle_deg'))}°; "
        f"image PSNR {_fmt(summary.get('image', {}).get('psnr_final'))} dB "
        f"(encoders only {_fmt(summary.get('image', {}).get('psnr_initial'))} dB), "
        f"SSIM {_fmt(summary.get('image', {}).get('ssim_final'), 3)}; "
        f"{_fmt(summary.get('seconds_per_example'), 1)} s per example.",
        f"Albedo PSNR over the eyes, brows and inner mouth (outside Table 1's region): "
        f"{_fmt(_cell(summary, 'scores', 'albedo_features', 'psnr'))} dB "
        f"(latent phase {_fmt(_cell(summary, 'paper_scores', 'albedo_features', 'psnr'))} dB).",
    ]
    level = summary.get("scores", {}).get("albedo_level_log") or {}
    if level:
        mean = " / ".join(f"{x:+.3f}" for x in level["mean"])
        rms = " / ".join(f"{x:.3f}" for x in level["rms"])
        extra.append(f"Albedo level error (−log of the alignment scale, R / G / B): mean {mean}, RMS {rms}.")
    if summary.get("failed"):
        extra.append("Failed: " + "; ".join(f"{f['name']}: {f['error']}" for f in summary["failed"]))
    return "\n".join(head + rows) + "\n\n" + "\n".join(extra) + "\n"


ABLATION_COLUMNS = (
    ("image PSNR", ("image", "psnr_final"), 2),
    ("image SSIM", ("image", "ssim_final"), 3),
    ("albedo PSNR", ("scores", "albedo", "psnr"), 2),
    ("normal PSNR", ("scores", "normal", "psnr"), 2),
    ("specular PSNR", ("scores", "specular", "psnr"), 2),
    ("light PSNR", ("scores", "light", "psnr"), 2),
    ("albedo PSNR aligned", ("scores", "albedo_aligned", "psnr"), 2),
    ("albedo RMSE", ("scores", "albedo", "rmse"), 3),
    ("s / example", ("seconds_per_example",), 1),
)


def _dig(d: dict, path: tuple[str, ...]) -> Any:
    for k in path:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _order(name: str) -> tuple[int, str]:
    return (ABLATION_ORDER.index(name) if name in ABLATION_ORDER else len(ABLATION_ORDER), name)


def ablation_markdown(runs: dict[str, dict]) -> str:
    """One row per ablation (``{name: summary}``), plus the renderer's effect in words."""
    names = sorted(runs, key=_order)
    head = ["| ablation | n | " + " | ".join(c for c, _, _ in ABLATION_COLUMNS) + " |",
            "|---" * (len(ABLATION_COLUMNS) + 2) + "|"]
    rows = [f"| {n} | {runs[n]['ok']}/{runs[n]['count']} | " + " | ".join(
        _fmt(_dig(runs[n], p), d) for _, p, d in ABLATION_COLUMNS) + " |" for n in names]
    notes: list[str] = []
    missing = [n for n in ABLATION_ORDER if n not in runs]
    if missing:
        notes.append("Not run (or failed to start): " + ", ".join(missing) + ".")
    if "full" in runs and "no_renderer" in runs:
        f, r = runs["full"], runs["no_renderer"]
        di = _diff(_dig(f, ("image", "psnr_final")), _dig(r, ("image", "psnr_final")))
        da = _diff(_dig(f, ("scores", "albedo", "psnr")), _dig(r, ("scores", "albedo", "psnr")))
        notes.append(f"Renderer optimization (full − no_renderer): image PSNR {_fmt(di, 2)} dB, "
                     f"albedo PSNR {_fmt(da, 2)} dB.")
    for other in ("no_skip", "no_enhancer"):
        if "full" in runs and other in runs:
            f, o = runs["full"], runs[other]
            parts = [f"{c} {_fmt(_diff(_dig(f, p), _dig(o, p)), 2)}"
                     for c, p, _ in ABLATION_COLUMNS[:6]]
            notes.append(f"full − {other}: " + ", ".join(parts) + ".")
    return "\n".join(head + rows) + "\n\n" + "\n".join(notes) + ("\n" if notes else "")


def _diff(a: Any, b: Any) -> float | None:
    return None if a is None or b is None else float(a) - float(b)


def gather(folder: Path) -> tuple[Path, Path]:
    """Combine every ``results.json`` under ``folder`` into ``ablation.md`` / ``ablation.json``.

    Raises:
        InputError: ``folder`` does not exist or holds no results.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"gather folder {folder} does not exist; pass the sweep's output folder")
    runs: dict[str, dict] = {}
    for path in sorted(folder.rglob(RESULTS_FILE)):
        doc = json.loads(path.read_text(encoding="utf-8"))
        name = str(doc.get("ablation", path.parent.name))
        if name in runs:
            name = f"{name} ({path.parent.name})"
        runs[name] = doc["summary"]
    if not runs:
        raise InputError(f"no {RESULTS_FILE} under {folder}; run `python evaluate.py -m "
                         "ablation=full,no_skip,no_renderer,no_enhancer` first")
    md = "# Ablations (section 8.4)\n\n" + ablation_markdown(runs) + "\n" + DEFINITIONS
    md_path = atomic_write_text(folder / "ablation.md", md)
    json_path = atomic_write_json(folder / "ablation.json", {"runs": strict_json(runs)})
    return md_path, json_path


def results_document(ablation: str, summary: dict, examples: list[dict], settings: dict) -> dict:
    """The strict-JSON document of one evaluation job."""
    return strict_json({"ablation": ablation, "summary": summary, "examples": examples,
                    "settings": settings, "paper_table1": PAPER_TABLE1,
                    "definitions": " ".join(DEFINITIONS.split())})
