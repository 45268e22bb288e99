"""Contact sheet of fitted photos: ``python -m facerefl.eval.sheet OUT.png FOLDER [FOLDER ...]``.

Each FOLDER is one output folder of ``optimize.py``; its row shows the photo, the
reconstruction over it, the albedo, the specular map and every relit render
(``relit_*.png``, alphabetical, cut to the face), each scaled to a square tile. Missing files leave a blank
tile, so folders of different runs line up.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from facerefl.errors import InputError
from facerefl.eval.plots import save_grid

__all__ = ["COLUMNS", "folder_row", "make_sheet", "main"]

#: Leading columns of a row (file names in an optimize output folder).
COLUMNS = ("photo.png", "composite.png", "albedo.png", "specular.png")


def _load(path: Path, crop: bool = False) -> torch.Tensor | None:
    """``[3, H, W]`` sRGB in [0, 1] (alpha composited over white), or None when missing;
    ``crop``: cut to the square around the opaque pixels (a relit face fills its tile)."""
    if not path.is_file():
        return None
    with Image.open(path) as im:
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float32) / 255.0
    if crop and (rgba[..., 3] > 0.5).any():
        ys, xs = np.nonzero(rgba[..., 3] > 0.5)
        cy, cx = (ys.min() + ys.max()) / 2, (xs.min() + xs.max()) / 2
        half = int(max(ys.max() - ys.min(), xs.max() - xs.min()) * 0.55) + 1
        pad = np.zeros((rgba.shape[0] + 2 * half, rgba.shape[1] + 2 * half, 4), np.float32)
        pad[half:half + rgba.shape[0], half:half + rgba.shape[1]] = rgba
        y0, x0 = int(cy), int(cx)
        rgba = pad[y0:y0 + 2 * half, x0:x0 + 2 * half]
    rgb = rgba[..., :3] * rgba[..., 3:] + (1.0 - rgba[..., 3:])
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))


def folder_row(folder: Path, relit: list[str]) -> list[torch.Tensor | None]:
    """One sheet row: :data:`COLUMNS` then the named relit renders of ``folder``."""
    return [_load(folder / name) for name in COLUMNS] + [_load(folder / name, crop=True) for name in relit]


def make_sheet(out: Path, folders: list[Path], size: int = 192) -> Path:
    """Write the sheet of ``folders`` to ``out`` (PNG, atomically) and return its path."""
    missing = [str(f) for f in folders if not (f / "metrics.json").is_file()]
    if missing:
        raise InputError(f"not an optimize output folder (no metrics.json): {', '.join(missing)}")
    relit = sorted({p.name for f in folders for p in f.glob("relit_*.png")})
    return save_grid(out, [folder_row(f, relit) for f in folders], size)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m facerefl.eval.sheet", description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="the PNG to write")
    p.add_argument("folders", type=Path, nargs="+", help="optimize.py output folders")
    p.add_argument("--size", type=int, default=192, help="tile side in pixels")
    args = p.parse_args(argv)
    try:
        print(make_sheet(args.out, args.folders, args.size))
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
