"""A look at the synthetic data: ``python -m facerefl.data.preview --n 16 --out grid.png``.

One row per example; columns: unwrapped texture T (sRGB, pixels outside the skin mask
dimmed), albedo (shown sRGB-encoded), specular intensity, tangent normal ((n + 1) / 2),
a mirror-ball light probe of the SH lighting (exposed for its mean, Reinhard tone-mapped),
and the photo.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from facerefl.data.assemble import ExampleGenerator, GeneratorSettings, Sizes
from facerefl.data.types import ReflectanceBatch, collate_reflectance
from facerefl.errors import InputError
from facerefl.fsutil import atomic_write
from facerefl.render.color import linear_to_srgb
from facerefl.render.sh import probe_normals, sh_basis


def probe_image(light: torch.Tensor, size: int) -> torch.Tensor:
    """Mirror ball lit by SH radiance ``light [3, 9]``: ``[3, size, size]`` linear RGB.

    A chrome sphere seen head-on along -z shows, at the point with normal n, the radiance
    arriving from the reflected view direction ``2 (n.z) n - z``; 0 outside the disc.
    """
    n, inside = probe_normals(size, torch.float64)
    d = 2 * n[..., 2:] * n - torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    rad = sh_basis(d) @ light.double().T
    return (rad.clamp_min(0) * inside[..., None]).permute(2, 0, 1).float()


def _tile(img: torch.Tensor, size: int) -> torch.Tensor:
    """``[C, H, W]`` in [0, 1] -> ``[3, size, size]`` (grey broadcast to RGB)."""
    if img.shape[0] == 1:
        img = img.expand(3, -1, -1)
    return F.interpolate(img[None].float(), size=(size, size), mode="bilinear",
                         align_corners=False, antialias=True)[0].clamp(0, 1)


def preview_row(b: ReflectanceBatch, i: int, size: int) -> torch.Tensor:
    """The six tiles of example ``i`` side by side, ``[3, size, 6 size]`` sRGB in [0, 1]."""
    t = b.texture[i]
    tex = t[:3] * (0.55 + 0.45 * t[3:4])
    probe = probe_image(b.light[i], size)
    probe = probe / (float(b.light[i, :, 0].mean()) * 0.2820948 + 1e-6)  # mean radiance -> 1
    probe = linear_to_srgb(probe / (1 + probe))
    tiles = [tex, linear_to_srgb(b.albedo[i]), b.specular[i], (b.normal[i] + 1) / 2, probe]
    tiles.append(b.image[i] if b.image is not None else torch.zeros(3, size, size))
    return torch.cat([_tile(x, size) for x in tiles], dim=2)


def preview_grid(batch: ReflectanceBatch, size: int = 128) -> np.ndarray:
    """All rows stacked: ``[B * size, 6 * size, 3]`` uint8 sRGB."""
    rows = [preview_row(batch, i, size) for i in range(batch.batch_size)]
    grid = torch.cat(rows, dim=1).permute(1, 2, 0).numpy()
    return np.round(grid * 255).astype(np.uint8)


def save_png_atomic(img: np.ndarray, out: Path) -> None:
    """Write a uint8 ``[H, W, 3]`` image to ``out`` via a temp file in the same folder."""
    atomic_write(out, lambda tmp: Image.fromarray(img).save(tmp, format="PNG"), make_parents=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m facerefl.data.preview",
                                description="Render a grid of synthetic examples.")
    p.add_argument("--n", type=int, default=16, help="number of examples (rows)")
    p.add_argument("--out", type=Path, required=True, help="output PNG")
    p.add_argument("--seed", type=int, default=0, help="first example seed")
    p.add_argument("--renderer", choices=("sh", "mc"), default="sh")
    p.add_argument("--size", type=int, default=256, help="image and texture size")
    p.add_argument("--tile", type=int, default=128, help="tile size in the grid")
    args = p.parse_args(argv)
    try:
        if not 1 <= args.n <= 256:
            raise InputError(f"--n must be in 1..256, got {args.n}")
        sizes = Sizes(image=args.size, texture=args.size, detail=max(16, args.size // 2))
        gen = ExampleGenerator(GeneratorSettings(sizes=sizes, renderer=args.renderer))
        batch = collate_reflectance([gen(args.seed + i) for i in range(args.n)])
        save_png_atomic(preview_grid(batch, args.tile), args.out)
    except (InputError, ValueError, OSError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
