"""``python -m facerefl.data.make_cache --out DIR --n N``: cache training examples.

Generates examples with the fast (SH) renderer and the realism effects on (``--no-effects``:
off; :mod:`facerefl.data.effects`) and stores them as safetensors shards plus
a JSON manifest (:mod:`facerefl.data.cache`); ``SyntheticDataModule(cache_dir=DIR)``
reads them back. Seeds are ``--seed`` .. ``--seed + N - 1``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

from facerefl.data.assemble import UNWRAPS, GeneratorSettings, Sizes
from facerefl.data.cache import TRAIN_FIELDS, print_progress, write_cache
from facerefl.data.effects import EffectSettings
from facerefl.errors import InputError


def build_parser(prog: str, description: str, defaults: dict) -> argparse.ArgumentParser:
    """Arguments shared by make_cache and make_testset (defaults per command)."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--out", type=Path, default=defaults.get("out"),
                   required=defaults.get("out") is None, help="cache folder")
    p.add_argument("--n", type=int, default=defaults["n"], help="number of examples")
    p.add_argument("--seed", type=int, default=defaults["seed"], help="first seed")
    p.add_argument("--image", type=int, default=defaults["image"], help="photo size (pixels)")
    p.add_argument("--texture", type=int, default=defaults["texture"], help="T and albedo size")
    p.add_argument("--detail", type=int, default=defaults["detail"],
                   help="specular and normal size")
    p.add_argument("--bake-dirs", type=int, default=defaults.get("bake_dirs", 128),
                   help="visibility-bake ray directions per vertex")
    p.add_argument("--workers", type=int, default=defaults.get("workers", 1),
                   help="generator processes")
    p.add_argument("--shard-size", type=int, default=256, help="examples per shard")
    p.add_argument("--overwrite", action="store_true", help="replace an existing cache")
    p.add_argument("--all-fields", action="store_true", default=defaults.get("all_fields", False),
                   help="also keep the evaluation fields (photo, baked maps, mesh, camera)")
    p.add_argument("--float32", action="store_true", default=defaults.get("float32", False),
                   help="store maps as float32 instead of float16")
    p.add_argument("--unwrap", choices=UNWRAPS, default="truth",
                   help="T from the scene's own mesh (truth) or from the geometry stage's fit of the "
                        "rendered photo, as a user's photo is unwrapped (photo; rejected seeds are skipped)")
    return p


def run(args: argparse.Namespace,
        settings_of: Callable[[Sizes, argparse.Namespace], GeneratorSettings]) -> int:
    """Build the cache the parsed ``args`` ask for; CLI error handling (exit code 2)."""
    try:
        if args.n < 1:
            raise InputError(f"--n must be at least 1, got {args.n}")
        sizes = Sizes(image=args.image, texture=args.texture, detail=args.detail)
        settings = settings_of(sizes, args)
        t0 = time.perf_counter()
        m = write_cache(args.out, settings, list(range(args.seed, args.seed + args.n)),
                    shard_size=args.shard_size, workers=args.workers,
                    overwrite=args.overwrite, progress=print_progress,
                    fields=None if args.all_fields else TRAIN_FIELDS, half=not args.float32)
        dt = time.perf_counter() - t0
    except (InputError, ValueError, OSError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    skipped = f"; {len(m['skipped'])} seeds skipped (geometry stage)" if m.get("skipped") else ""
    print(f"wrote {m['count']} examples to {args.out} in {dt:.1f} s ({args.n / dt:.2f} seeds/s){skipped}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = build_parser("python -m facerefl.data.make_cache",
                     "Cache synthetic training examples (fast SH renderer).",
                     {"n": 1000, "seed": 0, "image": 256, "texture": 128, "detail": 128})
    p.add_argument("--no-effects", action="store_true",
                   help="no realism effects (glasses, hair, sun, makeup, ...; docs/synthetic.md)")
    args = p.parse_args(argv)
    return run(args, lambda sizes, a: GeneratorSettings(
        sizes=sizes, renderer="sh", bake_dirs=a.bake_dirs, unwrap=a.unwrap,
        effects=EffectSettings.off() if a.no_effects else EffectSettings()))


if __name__ == "__main__":
    sys.exit(main())
