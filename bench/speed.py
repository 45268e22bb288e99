"""Speed of the per-photo fit: ``run(out_dir)`` → ``out_dir/speed.json`` and ``speed.png``.

Four measurements (issue 14):

* **steps**: milliseconds of one latent step with and without the enhancers, and of its
  parts (decoders, enhancers, render, G-buffer preparation) on the astronaut.

* **ideas**: each speed idea as a set of ``fit.*`` overrides (:data:`VARIANTS`), fitted on
  the first ``n`` examples of the Monte Carlo test set and on the two sample photos, the
  variants interleaved photo by photo so that background load hits them alike. Per
  variant: median fit time (encoders → delighting, geometry excluded), the latent phase's
  best loss and image PSNR, and Table 1's albedo / specular / normal / light PSNR against
  the truth for the default pipeline and the paper's method (the latent phase's maps).
* **photos**: ``optimize`` end to end (geometry → written outputs) on the two sample
  photos with the defaults and with the paper's loop (:data:`PAPER`), each run in its own
  process so its peak resident memory is its own, interleaved, ``repeats`` times;
  medians.
* **face sizes**: the astronaut scaled into canvases from a small face to a 4000×3000
  portrait, both settings: time, peak memory and the map sides against the face's pixel
  count, plotted in ``speed.png``.

``python -m bench.speed [ideas|photos|sizes ...]`` runs some of them (all by default);
``python -m bench.speed --one IMAGE SETTINGS`` is the child process of the last two.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench import OUT_DIR
from facerefl.fsutil import atomic_write_text

__all__ = ["run", "VARIANTS", "PAPER"]

#: The paper's loop (section 8.1): 150 Adam steps at a constant 0.1, enhancers in every step.
PAPER = {"iterations": 150, "fit.lr_schedule": "constant", "fit.enhanced_iterations": "null",
         "fit.early_stop": False, "fit.detail_max_size": 0}

#: Speed ideas as overrides of the config (``iterations`` or ``fit.<key>``); the paper's
#: loop is the reference.
VARIANTS: dict[str, dict] = {
    "paper_150": PAPER,
    "early_stop": {**PAPER, "fit.early_stop": True},
    "steps_80": {**PAPER, "iterations": 80},
    "steps_80_cosine": {**PAPER, "iterations": 80, "fit.lr_schedule": "cosine"},
    "steps_50_cosine": {**PAPER, "iterations": 50, "fit.lr_schedule": "cosine"},
    "coarse_150_enhance_once": {**PAPER, "fit.enhanced_iterations": 0},
    "coarse_150_cosine_enhance_once": {**PAPER, "fit.enhanced_iterations": 0, "fit.lr_schedule": "cosine"},
    "coarse_130_then_20": {**PAPER, "fit.enhanced_iterations": 20, "fit.lr_schedule": "cosine"},
    "coarse_100_enhance_once": {**PAPER, "iterations": 100, "fit.enhanced_iterations": 0},
    "coarse_130_then_20_constant": {**PAPER, "fit.enhanced_iterations": 20},
    "defaults": {},
}

SAMPLE_NAMES = ("astronaut", "grace_hopper")


def sample_photos() -> dict[str, Path]:
    """The bundled astronaut and matplotlib's Grace Hopper."""
    import matplotlib.cbook

    from facerefl.resources import SAMPLES_DIR

    return {"astronaut": SAMPLES_DIR / "astronaut.png",
            "grace_hopper": Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))}


def _overrides(settings: dict) -> list[str]:
    return [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in settings.items()]


def _config(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    from facerefl.resources import CONF_DIR, source_checkout

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("optimize", overrides=[*overrides, f"paths.root_dir={source_checkout()}"])


def _median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 4) if values else None


# ---------------------------------------------------------------------------- ideas
def ideas(n_examples: int = 8, variants: dict[str, dict] | None = None) -> dict:
    """Each variant on the first ``n_examples`` test-set examples and the sample photos."""
    from facerefl.data.cache import CachedDataset
    from facerefl.data.make_testset import default_out
    from facerefl.eval.synthetic import MEMO, example_name, ground_truth, scores_of
    from facerefl.fit.pipeline import fit_geometry
    from facerefl.geometry.result import build_face_geometry
    from facerefl.tasks.optimize import fit_settings, geometry_config, load_networks

    variants = VARIANTS if variants is None else variants
    torch.set_num_threads(1)
    settings = {name: fit_settings(_config(_overrides(v))) for name, v in variants.items()}
    gcfg = geometry_config(_config([]))
    nets = load_networks(_config([]))
    rows: dict[str, dict[str, list]] = {name: {} for name in variants}

    def add(name: str, key: str, value) -> None:
        rows[name].setdefault(key, []).append(None if value is None else float(value))

    data = CachedDataset(default_out())
    for i in range(min(n_examples, len(data))):
        ex, label = data[i], example_name(data[i], i)
        geom = MEMO.get(label, gcfg, lambda: build_face_geometry(ex.image[0], gcfg))
        for name, s in settings.items():
            t0 = time.perf_counter()
            fit = fit_geometry(geom, nets, s)
            add(name, "fit_s", time.perf_counter() - t0)
            final, _, paper = scores_of(fit, ground_truth(ex), 64)
            m = fit.metrics
            add(name, "latent_loss", fit.result.latent_best_loss)
            add(name, "image_psnr_latent", m.get("psnr_latent", m["psnr_final"]))
            add(name, "image_psnr_final", m["psnr_final"])
            for table, sc in (("default", final), ("paper", paper)):
                add(name, f"{table}_albedo", sc.albedo.psnr)
                add(name, f"{table}_light", sc.light.psnr)
            add(name, "specular", final.specular.psnr)
            add(name, "normal", final.normal.psnr)
            print(f"[speed] example {i} {name:32s} {time.perf_counter() - t0:6.2f} s  albedo "
                  f"{final.albedo.psnr:6.2f} / paper {paper.albedo.psnr:6.2f} dB", flush=True)
    photos = {}
    for photo, path in sample_photos().items():
        geom = build_face_geometry(path, gcfg)
        for name, s in settings.items():
            t0 = time.perf_counter()
            fit = fit_geometry(geom, nets, s)
            m = fit.metrics
            photos.setdefault(name, {})[photo] = {
                "fit_s": round(time.perf_counter() - t0, 3),
                "latent_loss": round(fit.result.latent_best_loss, 6),
                "psnr_latent": round(m.get("psnr_latent", m["psnr_final"]), 3),
                "psnr_final": round(m["psnr_final"], 3),
            }
            print(f"[speed] {photo} {name:32s} {photos[name][photo]}", flush=True)
    table = {}
    for name in variants:
        t = {f"median_{k}" if k == "fit_s" else f"mean_{k}": _median(v) if k == "fit_s" else
             round(statistics.fmean(v), 4) for k, v in rows[name].items()}
        t["photos"] = photos.get(name, {})
        table[name] = t
    return {"n_examples": n_examples, "overrides": variants, "variants": table}


# ---------------------------------------------------------------------------- step costs
def steps(repeats: int = 15) -> dict:
    """Median milliseconds of one latent step's parts on the astronaut (1 thread): where
    the time goes, and so what batching the decoders or caching the G-buffer work could
    buy at most."""
    from facerefl.fit.loop import _loss, render_maps
    from facerefl.fit.pipeline import problem_from_geometry
    from facerefl.geometry.result import build_face_geometry
    from facerefl.render.maps import ReflectanceMaps
    from facerefl.render.shading import prepare_gbuffer
    from facerefl.tasks.optimize import fit_settings, geometry_config, load_networks

    torch.set_num_threads(1)
    cfg = _config([])
    s = fit_settings(cfg)
    geom = build_face_geometry(sample_photos()["astronaut"], geometry_config(cfg))
    nets = load_networks(cfg)
    prob = problem_from_geometry(geom, s.roughness)
    code = nets.encode(prob.texture)
    zs = {k: getattr(code, k).z.clone().requires_grad_() for k in ("albedo", "specular", "normal")}
    light = code.light.clone().requires_grad_()
    c = code.with_z(**zs)
    coarse = nets.decode(c)
    enhanced = nets.reflectance(c, prob.texture)
    fixed = ReflectanceMaps(*(m.detach().requires_grad_() for m in (enhanced.albedo, enhanced.specular, enhanced.normal)))

    def step(enhance: bool):
        maps = nets.reflectance(c, prob.texture) if enhance else nets.decode(c)
        _loss(render_maps(prob, maps, light, s), prob).backward()

    parts = {
        "step_enhanced": lambda: step(True),
        "step_decoder_only": lambda: step(False),
        "decoders_forward": lambda: nets.decode(c),
        "enhancers_forward": lambda: nets.enhance(coarse, prob.texture),
        "render_forward_backward": lambda: _loss(render_maps(prob, fixed, light, s), prob).backward(),
        "prepare_gbuffer": lambda: prepare_gbuffer(geom.gbuffer, geom.visibility_sh, geom.bent_normal,
                                                   roughness=s.roughness),
    }
    out = {}
    for name, fn in parts.items():
        fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(1000 * (time.perf_counter() - t0))
        out[name + "_ms"] = round(statistics.median(times), 2)
        print(f"[speed] {name:26s} {out[name + '_ms']:8.2f} ms", flush=True)
    out["face_pixels"] = float(prob.weight.sum())
    return out


# ---------------------------------------------------------------------------- child runs
def one(image: Path, settings: str, out: Path, overrides: list[str]) -> dict:
    """One ``optimize`` run in this process: timings, peak RSS, map sides, face pixels."""
    from facerefl.tasks.optimize import optimize

    ov = _overrides(PAPER) if settings == "paper" else []
    cfg = _config([f"image={image}", f"output_dir={out}", "progress=false", "overwrite=true", *ov, *overrides])
    res = optimize(cfg)
    row = res["rows"][0]
    if not row.ok:
        raise RuntimeError(f"fit of {image} failed: {row.error}")
    from PIL import Image

    sides = {}
    for name in ("albedo", "specular", "normal"):
        p = Path(row.output_dir) / f"{name}.png"
        if p.is_file():
            sides[name] = Image.open(p).size[0]
    relit = sorted(Path(row.output_dir).glob("relit_*.png"))
    return {"timings": {k: round(v, 3) for k, v in row.timings.items()},
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "face_pixels": row.metrics.get("face_pixels"), "map_sides": sides,
            "relit_size": list(Image.open(relit[0]).size) if relit else None,
            "psnr_final": row.metrics.get("psnr_final")}


def _child(image: Path, settings: str, overrides: list[str] = ()) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "bench.speed", "--one", str(image), settings, "--out", f"{tmp}/fit",
               *[f"--set={o}" for o in overrides]]
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=Path(__file__).resolve().parents[1])
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {p.stderr.strip().splitlines()[-1:]}")
        return json.loads(p.stdout.strip().splitlines()[-1])


def photos(repeats: int = 3) -> dict:
    """Defaults vs the paper's loop on the two sample photos, end to end, interleaved."""
    runs: dict[str, dict[str, list[dict]]] = {}
    for r in range(repeats):
        for photo, path in sample_photos().items():
            for settings in ("defaults", "paper"):
                out = _child(path, settings)
                runs.setdefault(settings, {}).setdefault(photo, []).append(out)
                print(f"[speed] {photo} {settings:8s} rep {r}: {out['timings']['total']:6.2f} s, "
                      f"{out['peak_rss_mb']:7.1f} MB", flush=True)
    summary = {}
    for settings, per in runs.items():
        for photo, outs in per.items():
            summary.setdefault(settings, {})[photo] = {
                **summarize_runs(outs), "face_pixels": outs[0]["face_pixels"],
                "map_sides": outs[0]["map_sides"], "relit_size": outs[0]["relit_size"]}
    return summary


def summarize_runs(outs: list[dict]) -> dict:
    """Medians over repeated fits of one photo, each ``{"timings": {...}, "peak_rss_mb": ...}``."""
    return {"total_s": _median([o["timings"]["total"] for o in outs]),
            "stages_s": {k: _median([o["timings"][k] for o in outs]) for k in outs[0]["timings"]},
            "peak_rss_mb": _median([o["peak_rss_mb"] for o in outs]), "repeats": len(outs)}


# ---------------------------------------------------------------------------- face sizes
#: Canvas (width, height) and the astronaut's side in it, from a small face (480²: about the
#: geometry stage's 80-pixel minimum) to a 4000×3000 portrait.
CANVASES = {"small_480": ((480, 480), 480), "medium_512": ((512, 512), 512),
            "large_1536": ((1536, 1536), 1536), "portrait_4000x3000": ((4000, 3000), 3000)}


def canvas(name: str, folder: Path) -> Path:
    """The astronaut resized (bicubic) into the canvas ``name`` of :data:`CANVASES`, centred."""
    from PIL import Image

    from facerefl.resources import SAMPLES_DIR

    (w, h), side = CANVASES[name]
    img = Image.open(SAMPLES_DIR / "astronaut.png").convert("RGB").resize((side, side), Image.BICUBIC)
    out = Image.new("RGB", (w, h), (128, 128, 128))
    out.paste(img, ((w - side) // 2, (h - side) // 2))
    path = folder / f"astronaut_{name}.png"
    out.save(path)
    return path


def sizes() -> dict:
    """Both settings on each canvas (one process per run)."""
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in CANVASES:
            path = canvas(name, Path(tmp))
            for settings in ("defaults", "paper"):
                try:
                    out = _child(path, settings)
                except RuntimeError as e:  # e.g. a face below the geometry stage's minimum
                    print(f"[speed] {name} {settings}: {e}", flush=True)
                    continue
                results.setdefault(settings, {})[name] = out
                print(f"[speed] {name:20s} {settings:8s} face {out['face_pixels']:9.0f} px  "
                      f"{out['timings']['total']:6.2f} s  {out['peak_rss_mb']:7.1f} MB  maps {out['map_sides']}",
                      flush=True)
    return results


def plot(doc: dict, path: Path) -> Path | None:
    """Time and peak memory against the face's pixel count, one line per setting."""
    if "sizes" not in doc:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10, 4))
    for settings, runs in doc["sizes"].items():
        pts = sorted((r["face_pixels"], r["timings"]["total"], r["peak_rss_mb"]) for r in runs.values())
        px = [p[0] for p in pts]
        ax_t.plot(px, [p[1] for p in pts], "o-", label=settings)
        ax_m.plot(px, [p[2] for p in pts], "o-", label=settings)
    for settings, per in doc.get("photos", {}).items():
        for photo, r in per.items():
            ax_t.plot(r["face_pixels"], r["total_s"], "x", color="k")
            ax_m.plot(r["face_pixels"], r["peak_rss_mb"], "x", color="k")
            ax_t.annotate(f"{photo} ({settings})", (r["face_pixels"], r["total_s"]), fontsize=7)
    for ax, label in ((ax_t, "end-to-end seconds"), (ax_m, "peak RSS (MB)")):
        ax.set_xscale("log")
        ax.set_xlabel("face pixels")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("optimize.py per photo: astronaut canvases (lines), sample photos (x)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


PARTS = {"steps": steps, "ideas": ideas, "photos": photos, "sizes": sizes}


def run(out_dir: Path, parts: tuple[str, ...] = tuple(PARTS)) -> dict:
    """Measure ``parts``, merge them into ``speed.json`` (other parts' numbers kept) and plot."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "speed.json"
    doc = json.loads(path.read_text()) if path.is_file() else {}
    for part in parts:
        doc[part] = PARTS[part]()
        doc[f"{part}_when"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
    plot(doc, out_dir / "speed.png")
    return doc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.speed", description=__doc__.splitlines()[0])
    p.add_argument("parts", nargs="*", default=list(PARTS), help=f"some of {list(PARTS)}")
    p.add_argument("--one", nargs=2, metavar=("IMAGE", "SETTINGS"))
    p.add_argument("--out", type=Path)
    p.add_argument("--set", action="append", default=[])
    args = p.parse_args(argv)
    unknown = [x for x in args.parts if x not in PARTS]
    if unknown:
        p.error(f"unknown parts {unknown}; choose from {list(PARTS)}")
    if args.one:
        print(json.dumps(one(Path(args.one[0]), args.one[1], args.out, args.set)))
        return 0
    run(OUT_DIR, tuple(args.parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
