"""Before/after timing of ``optimize.py`` across git revisions, side by side in one run.

``python -m bench.trees REV [REV ...] [--repeats 3] [--out bench/trees.json]``

Each revision is checked out into a temporary git worktree and run from there (its own
``facerefl`` first on ``PYTHONPATH``) with this checkout's virtual environment; ``HEAD``
or ``.`` means the working tree itself. Every revision fits the two sample photos with
its own defaults, one process per fit so that peak resident memory is that fit's,
interleaved revision by revision and photo by photo so that background load hits them
alike. A warm-up fit per revision compiles its numba kernels first and is not counted.
Reported per revision and photo: the median ``total`` of the fit's ``metrics.json``
(geometry to written outputs, the number ``optimize.py`` prints), the median per stage,
and the median peak RSS of the fit's process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import OUT_DIR
from bench.speed import sample_photos, summarize_runs
from facerefl.fsutil import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]


def _tree(rev: str, tmp: Path) -> Path:
    if rev in ("HEAD", "."):
        return ROOT
    path = tmp / f"wt_{rev}"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(path), rev],
                   check=True, capture_output=True)
    return path


def fit_once(tree: Path, image: Path) -> dict:
    """``optimize.py`` of ``tree`` on ``image`` in a child process → its timings and peak
    RSS (the child's own rusage, from ``os.wait4``)."""
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_WAIT_POLICY": "PASSIVE"}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "fit"
        cmd = [sys.executable, str(tree / "optimize.py"), f"image={image}", f"output_dir={out}",
               "overwrite=true", "progress=false"]
        with open(Path(tmp) / "stderr", "w+") as err:
            proc = subprocess.Popen(cmd, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=err)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode != 0:
                err.seek(0)
                raise RuntimeError(f"{' '.join(cmd)} failed: {err.read().strip().splitlines()[-1:]}")
        metrics = json.loads((out / "metrics.json").read_text())
    return {"timings": metrics["timings_s"], "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "psnr_final": metrics["metrics"].get("psnr_final")}


def compare(revs: list[str], repeats: int = 3) -> dict:
    photos = sample_photos()
    runs: dict[str, dict[str, list[dict]]] = {r: {} for r in revs}
    with tempfile.TemporaryDirectory() as tmp:
        trees = {r: _tree(r, Path(tmp)) for r in revs}
        try:
            for r, tree in trees.items():  # warm-up: numba compiles beside each tree's source
                fit_once(tree, photos["astronaut"])
            for rep in range(repeats):
                for photo, path in photos.items():
                    for r, tree in trees.items():
                        out = fit_once(tree, path)
                        runs[r].setdefault(photo, []).append(out)
                        print(f"[trees] rep {rep} {photo:12s} {r:10s} {out['timings']['total']:6.2f} s "
                              f"{out['peak_rss_mb']:7.1f} MB", flush=True)
        finally:
            for r, tree in trees.items():
                if tree != ROOT:
                    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                                   capture_output=True)
    summary = {}
    for r, per in runs.items():
        for photo, outs in per.items():
            summary.setdefault(r, {})[photo] = {**summarize_runs(outs), "psnr_final": outs[0]["psnr_final"]}
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.trees", description=__doc__.splitlines()[0])
    p.add_argument("revs", nargs="+")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=OUT_DIR / "trees.json")
    args = p.parse_args(argv)
    doc = {"revs": args.revs, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "results": compare(args.revs, args.repeats)}
    atomic_write_text(args.out, json.dumps(doc, indent=2) + "\n")
    for r, per in doc["results"].items():
        for photo, s in per.items():
            print(f"{r:10s} {photo:12s} total {s['total_s']:6.2f} s  peak {s['peak_rss_mb']:7.1f} MB  "
                  f"stages {s['stages_s']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
