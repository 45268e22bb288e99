"""``python -m facerefl.data.make_testset``: the fixed 100-example Monte Carlo test set.

Seeds ``TEST_SEED .. TEST_SEED + 99`` (disjoint from training seeds), lighting drawn
only from the held-out HDR maps (:data:`~facerefl.data.assemble.TEST_MAPS`), images
rendered by the Monte Carlo reference renderer (full HDR map, ray-cast visibility, GGX).
The ground-truth ``light`` of each example is the SH projection of the map used. No realism
effects (:mod:`facerefl.data.effects`): the set stays as it was built for Table 1. Two
generator processes by default (one per core of the reference 2-core machine): about
3.5 minutes there.
Default output: ``<asset cache>/synthetic/testset`` (see ``facerefl.assets``).
"""

from __future__ import annotations

import sys

from facerefl.assets import cache_dir
from facerefl.data.assemble import TEST_MAPS, GeneratorSettings
from facerefl.data.effects import EffectSettings
from facerefl.data.make_cache import build_parser, run

#: First seed of the test set.
TEST_SEED = 1_000_000_000


def default_out():
    return cache_dir() / "synthetic" / "testset"


def main(argv: list[str] | None = None) -> int:
    p = build_parser("python -m facerefl.data.make_testset",
                     "Build the Monte Carlo-rendered synthetic test set.",
                     {"n": 100, "seed": TEST_SEED, "image": 256, "texture": 128, "detail": 128,
                      "out": default_out(), "all_fields": True, "float32": True,
                      "bake_dirs": 256, "workers": 2})
    p.add_argument("--spp", type=int, default=64, help="Monte Carlo samples per pixel")
    args = p.parse_args(argv)
    return run(args, lambda sizes, a: GeneratorSettings(
        sizes=sizes, renderer="mc", spp=a.spp, bake_dirs=a.bake_dirs, maps=TEST_MAPS, unwrap=a.unwrap,
        effects=EffectSettings.off()))


if __name__ == "__main__":
    sys.exit(main())
