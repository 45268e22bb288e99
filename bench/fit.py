"""Benchmark of the main job: one 512² portrait, end to end, with the shipped CPU weights.

Runs :func:`facerefl.tasks.optimize.optimize` on the bundled sample ``astronaut.png`` (512×512)
with the default configuration (150 iterations) and records the stage breakdown
(geometry, encoding, optimization, writing), milliseconds per iteration and the total.
Target on a 2-core CPU: ≤ 60 s in total.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hydra import compose, initialize_config_dir

from facerefl.resources import CONF_DIR, SAMPLES_DIR, source_checkout

SAMPLE = SAMPLES_DIR / "astronaut.png"


def run(out_dir: Path, iterations: int = 150) -> dict:
    from facerefl.tasks.optimize import optimize

    with tempfile.TemporaryDirectory() as tmp:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            cfg = compose("optimize", overrides=[
                f"image={SAMPLE}", f"output_dir={tmp}/fit", f"iterations={iterations}", "progress=false",
                f"paths.root_dir={source_checkout()}",
            ])
        out = optimize(cfg)
    row = out["rows"][0]
    if not row.ok:
        raise RuntimeError(f"fit failed: {row.error}")
    t = row.timings
    result = {
        "image": SAMPLE.name, "size": "512x512", "iterations": iterations,
        "seconds": {k: round(v, 3) for k, v in t.items()},
        "ms_per_iteration": round(row.metrics["ms_per_iteration"], 1),
        "psnr_initial": round(row.metrics["psnr_initial"], 2),
        "psnr_final": round(row.metrics["psnr_final"], 2),
        "target_total_s": 60.0,
        "meets_target": t["total"] <= 60.0,
    }
    (out_dir / "fit.json").write_text(json.dumps(result, indent=2))
    print(f"{'stage':14s} {'seconds':>8s}")
    for k, v in t.items():
        print(f"{k:14s} {v:8.2f}")
    print(f"ms/iteration   {result['ms_per_iteration']:8.1f}")
    print(f"PSNR (face)    {result['psnr_initial']:.2f} -> {result['psnr_final']:.2f} dB")
    return result
