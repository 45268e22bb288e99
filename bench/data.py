"""Data benchmark: synthetic examples per second, per renderer, at 256² and 512².

``run(out_dir)`` times :class:`~facerefl.data.assemble.ExampleGenerator` end to end
(reflectance, scene, bake, render, sensor, unwrap + Poisson fill) with the photo, T and
albedo at S² and specular/normal at (S/2)², for the fast SH renderer and the Monte Carlo
reference (64 spp), in this process on one thread. One untimed warm-up example, then
``n`` timed ones. Writes ``out_dir/data.json`` and prints a table.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from facerefl.data.assemble import ExampleGenerator, GeneratorSettings, Sizes

__all__ = ["run"]

CASES = (("sh", 256, 8), ("sh", 512, 4), ("mc", 256, 2), ("mc", 512, 1))


def time_generator(renderer: str, size: int, n: int, first_seed: int = 0) -> float:
    """Seconds per example (mean of ``n`` after one warm-up)."""
    gen = ExampleGenerator(GeneratorSettings(sizes=Sizes(size, size, size // 2), renderer=renderer))
    gen(first_seed)
    t0 = time.perf_counter()
    for i in range(n):
        gen(first_seed + 1 + i)
    return (time.perf_counter() - t0) / n


def run(out_dir: Path, cases=CASES) -> dict:
    """Time every (renderer, size) case; write ``out_dir/data.json``; return the numbers."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = []
        for renderer, size, n in cases:
            sec = time_generator(renderer, size, n)
            rows.append({"renderer": renderer, "size": size, "examples": n,
                         "seconds_per_example": round(sec, 3),
                         "examples_per_second": round(1.0 / sec, 3)})
    finally:
        torch.set_num_threads(threads)
    result = {"name": "data", "threads": 1, "rows": rows}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "data.json").write_text(json.dumps(result, indent=2))
    print(f"{'renderer':8s} {'size':>5s} {'s/example':>10s} {'examples/s':>11s}")
    for r in rows:
        print(f"{r['renderer']:8s} {r['size']:5d} {r['seconds_per_example']:10.3f} "
              f"{r['examples_per_second']:11.3f}")
    return result
