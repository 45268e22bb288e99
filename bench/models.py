"""Benchmark of the networks: one fitting iteration's network cost per preset.

Measures, for batch 1 in eval mode with frozen weights, decoders + detail enhancers of all
three branches, forward and backward with respect to the latents z (what the per-photo
fitting does each iteration; the renderer is benchmarked by facerefl.render). Writes
``out_dir/models.json``.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch

from bench import OUT_DIR
from facerefl.models.networks import ReflectanceNetworks
from facerefl.models.presets import preset_sizes


def time_fit_iteration(nets: ReflectanceNetworks, texture_size: int, repeats: int = 10, warmup: int = 2) -> list[float]:
    """Wall-clock seconds of ``repeats`` decoder+enhancer forward/backward passes w.r.t. z."""
    nets.freeze()
    texture = torch.rand(1, 4, texture_size, texture_size)
    with torch.no_grad():
        code = nets.encode(texture)
    z = [c.z.clone().requires_grad_() for c in (code.albedo, code.specular, code.normal)]
    code = code.with_z(*z)
    times = []
    for i in range(warmup + repeats):
        t0 = time.perf_counter()
        maps = nets.reflectance(code, texture)
        (maps.albedo.mean() + maps.specular.mean() + maps.normal.mean()).backward()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def run(out_dir: Path, presets: tuple[str, ...] = ("cpu",), repeats: int = 10) -> dict:
    results = {}
    for name in presets:
        torch.manual_seed(0)
        sizes = preset_sizes(name)
        nets = ReflectanceNetworks(sizes)
        times = time_fit_iteration(nets, texture_size=2 * sizes.albedo.output_size, repeats=repeats)
        results[name] = {
            "decoders_enhancers_fwd_bwd_ms_median": 1000 * statistics.median(times),
            "decoders_enhancers_fwd_bwd_ms_min": 1000 * min(times),
            "repeats": repeats,
            "torch_threads": torch.get_num_threads(),
            "parameters": sum(p.numel() for p in nets.parameters()),
            "output_size": sizes.albedo.output_size,
        }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "models.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"{'preset':8s} {'fwd+bwd ms (median)':>20s} {'min ms':>8s} {'params':>10s}")
    for name, r in results.items():
        print(f"{name:8s} {r['decoders_enhancers_fwd_bwd_ms_median']:20.1f} "
              f"{r['decoders_enhancers_fwd_bwd_ms_min']:8.1f} {r['parameters']:10d}")
    return results


if __name__ == "__main__":
    run(OUT_DIR)
