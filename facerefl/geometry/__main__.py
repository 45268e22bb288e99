"""``python -m facerefl.geometry IMAGE --out DIR``: run the geometry stage on one photo.

Writes into DIR: ``texture.png`` (unwrapped sRGB texture T), ``mask.png`` (its valid-skin
channel), ``overlay.png`` (the mesh drawn over the photo, cropped to the face),
``face_mask.png`` (image-space loss region), ``ao.png``, ``bent_normal.png`` and
``visibility_sh.png`` (previews of the baked maps), ``face_geometry.safetensors`` (the
full :class:`~facerefl.geometry.result.FaceGeometry`) and ``geometry.json`` (settings,
timings, coverage). Bad input ends in one ``error: ...`` line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from dataclasses import asdict
from pathlib import Path

from facerefl.assets import AssetMissingError
from facerefl.errors import InputError, OutputExistsError
from facerefl.geometry import preview
from facerefl.geometry.result import FaceGeometry, GeometryConfig, build_face_geometry
from facerefl.geometry.template import load_template

OUTPUTS = ("texture.png", "mask.png", "overlay.png", "face_mask.png", "ao.png",
           "bent_normal.png", "visibility_sh.png", "face_geometry.safetensors", "geometry.json")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit code 2
        self.exit(2, f"error: {message} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
    d = GeometryConfig()
    p = _Parser(prog="python -m facerefl.geometry",
                description="Photo → face mesh, camera, unwrapped texture and baked occlusion.")
    p.add_argument("image", type=Path, help="portrait photo (JPEG, PNG, WebP, TIFF, BMP)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--resolution", type=int, default=d.resolution, help="UV texture size")
    p.add_argument("--subdivisions", type=int, default=d.subdivisions, help="mesh subdivision rounds")
    p.add_argument("--fov", type=float, default=d.fov_deg, help="camera field of view, degrees")
    p.add_argument("--rays", type=int, default=d.n_dirs, help="bake directions per vertex")
    p.add_argument("--max-side", type=int, default=d.max_side, help="downscale larger photos")
    p.add_argument("--overwrite", action="store_true", help="replace outputs already in --out")
    return p


def write_outputs(fg: FaceGeometry, out: Path) -> dict:
    """Write the files listed in :data:`OUTPUTS` into ``out``; return the summary."""
    out.mkdir(parents=True, exist_ok=True)
    preview.write_png(out / "texture.png", preview.texture_rgb(fg.texture))
    preview.write_png(out / "mask.png", preview.gray(fg.mask))
    # The template's own triangles over the 468 landmarks (subdivision adds no landmarks).
    preview.write_png(out / "overlay.png",
                      preview.mesh_overlay(fg.photo, fg.landmarks[:468], load_template().faces))
    preview.write_png(out / "face_mask.png", preview.gray(fg.face_mask[..., 0]))
    preview.write_png(out / "ao.png", preview.gray(fg.ao))
    preview.write_png(out / "bent_normal.png", preview.bent_normal_rgb(fg.bent_normal))
    preview.write_png(out / "visibility_sh.png", preview.sh_tiles(fg.visibility_sh))
    fg.save(out / "face_geometry.safetensors")
    summary = {
        "image_size": [fg.camera.height, fg.camera.width],
        "config": asdict(fg.config),
        "camera": asdict(fg.camera),
        "timings_s": asdict(fg.timings),
        "skin_mask_fraction": float(fg.mask.mean()),
        "image_face_fraction": float(fg.face_mask.mean()),
        "ao_range": [float(fg.vertex_bake.ao.min()), float(fg.vertex_bake.ao.max())],
    }
    preview.write_text(out / "geometry.json", json.dumps(summary, indent=2))
    return summary


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        existing = [n for n in OUTPUTS if (args.out / n).exists()]
        if existing and not args.overwrite:
            raise OutputExistsError(f"{args.out} already holds {', '.join(existing)}; "
                                    "pass --overwrite or choose another --out")
        cfg = GeometryConfig(resolution=args.resolution, subdivisions=args.subdivisions,
                             fov_deg=args.fov, n_dirs=args.rays, max_side=args.max_side)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            fg = build_face_geometry(args.image, cfg)
        for w in caught:
            if "faces found" in str(w.message):
                print(f"warning: {w.message}", file=sys.stderr)
        summary = write_outputs(fg, args.out)
    except (InputError, AssetMissingError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: cannot write to {args.out}: {e.strerror or e}", file=sys.stderr)
        return 2
    t = summary["timings_s"]
    print(f"wrote {args.out}: texture {cfg.resolution}², skin mask "
          f"{summary['skin_mask_fraction']:.0%} of the texture, {t['total']:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
