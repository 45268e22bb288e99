"""`make bench`: run every stage's benchmark and gather the numbers in ``bench/``.

Each stage that has one is a module ``bench.<stage>`` with ``run(out_dir) -> dict``; it
writes its own ``out_dir/<name>.json`` and prints a table. This runner calls them in
pipeline order and writes ``bench/summary.json`` with the machine it ran on.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from bench import OUT_DIR

STAGES = ("render", "geometry", "data", "models", "export", "fit", "speed", "eval")


def machine() -> dict:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=OUT_DIR)
    p.add_argument("stages", nargs="*", default=list(STAGES))
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {"machine": machine(), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "stages": {}}
    failed = []
    for stage in args.stages:
        try:
            mod = importlib.import_module(f"bench.{stage}")
        except ModuleNotFoundError:
            print(f"[bench] {stage}: no benchmark module")
            continue
        print(f"\n=== {stage} ===")
        try:
            summary["stages"][stage] = mod.run(args.out)
        except Exception as e:  # report and go on: one stage's failure must not hide the others
            print(f"[bench] {stage} FAILED: {type(e).__name__}: {e}", file=sys.stderr)
            failed.append(stage)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"\nwrote {args.out / 'summary.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
