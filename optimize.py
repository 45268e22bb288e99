"""Fit a portrait: ``python optimize.py image=photo.jpg`` (or a folder of photos).

Thin Hydra entry point around :func:`facerefl.tasks.optimize.optimize`. Exit status:
0 all photos fitted; 1 some photos in a folder failed; 2 bad input (one-line error).
"""

from __future__ import annotations

import os
import sys

# Idle OpenMP threads sleep instead of spinning: with torch's default of one thread per
# core, spinning workers fight any other load on a small CPU (measured on the 2-core
# CI machine under load: 860 ms per fitting iteration spinning, 295 ms passive). Must be
# set before torch is imported; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="optimize")
def main(cfg: DictConfig) -> float | None:
    from facerefl.assets import AssetMissingError
    from facerefl.errors import InputError
    from facerefl.tasks.optimize import optimize

    try:
        out = optimize(cfg)
    except (InputError, AssetMissingError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    rows = out["rows"]
    if out["failed"]:
        if not out["folder"] or out["failed"] == len(rows):
            first = next(r for r in rows if not r.ok)
            if not out["folder"]:
                print(f"error: {first.error}", file=sys.stderr)
            sys.exit(2)
        sys.exit(1)
    ok = [r for r in rows if r.ok]
    return ok[-1].metrics.get("psnr_final") if ok else None


if __name__ == "__main__":
    main()
