"""Benchmark of the evaluation's scoring: ``run(out_dir)`` → ``out_dir/eval.json``.

Times :func:`facerefl.eval.compare.compare` (all Table 1 metrics of one example) at the
CPU preset's sizes (maps 128²) and the paper's (albedo 1024², specular/normal 512²), and
the light-probe metric alone. Inputs are random maps; only the cost is measured.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from facerefl.eval.compare import GroundTruth, compare
from facerefl.eval.metrics import light_score
from facerefl.fsutil import atomic_write_text

__all__ = ["run"]


def _maps(albedo: int, detail: int, gen: torch.Generator) -> GroundTruth:
    n = F.normalize(torch.randn(1, 3, detail, detail, generator=gen) * 0.2
                    + torch.tensor([0, 0, 1.0])[None, :, None, None], dim=1)
    light = torch.randn(1, 3, 9, generator=gen) * 0.3
    light[:, :, 0] = 2.0
    return GroundTruth(torch.rand(1, 3, albedo, albedo, generator=gen),
                       torch.rand(1, 1, detail, detail, generator=gen), n, light)


def _time(fn, repeats: int) -> float:
    fn()  # warm-up (template masks are cached per size)
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return 1000.0 * (time.perf_counter() - t0) / repeats


def run(out_dir: Path) -> dict:
    """Measure and write ``eval.json``; prints a small table."""
    gen = torch.Generator().manual_seed(0)
    results = {}
    for name, (a, d, reps) in {"cpu_128": (128, 128, 20), "paper_1024_512": (1024, 512, 3)}.items():
        gt, est = _maps(a, d, gen), _maps(a // 2, d // 2, gen)
        results[f"compare_ms_{name}"] = _time(
            lambda: compare(est.albedo, est.specular, est.normal, est.light, gt), reps)
    g1, g2 = _maps(8, 8, gen), _maps(8, 8, gen)
    results["light_score_ms_64"] = _time(lambda: light_score(g1.light, g2.light, 64), 50)
    results["torch_threads"] = torch.get_num_threads()
    print(f"{'measure':28s} {'value':>10s}")
    for k, v in results.items():
        print(f"{k:28s} {v:10.2f}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "eval.json", json.dumps(results, indent=2) + "\n")
    return results
