"""``evaluate(cfg)``: Table 1, the ablations, Figures 5 and 7, and the real-photo report.

The entry script ``evaluate.py`` is a thin Hydra wrapper; tests call :func:`evaluate` with a
composed config. Modes (``conf/evaluate.yaml``):

* default: the Monte Carlo test set (:mod:`facerefl.eval.synthetic`) under the active
  ``ablation``: ``results.json``, ``report.md`` (Table 1 next to the paper, definitions),
  ``loss_curves.png`` (Figure 5), ``samples.png``, and with ``figure7.enabled`` the
  consistency study (``consistency.png``, in ``results.json`` and ``report.md``);
* ``photos=DIR``: real portraits (:mod:`facerefl.eval.photos`): ``photos.json``,
  ``photos.md``, ``contact_sheet.png``;
* ``gather=DIR``: combine a sweep's ``results.json`` files into ``ablation.md`` /
  ``ablation.json`` (:func:`facerefl.eval.report.gather`); a multirun does this itself at
  the end through :class:`GatherCallback`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import torch
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from facerefl.data.assemble import Sizes
from facerefl.data.cache import CachedDataset
from facerefl.data.make_testset import default_out
from facerefl.errors import InputError
from facerefl.eval import report
from facerefl.eval.consistency import consistency_summary, relit_examples
from facerefl.eval.metrics import albedo_srgb
from facerefl.eval.photos import evaluate_photo, photos_markdown, photos_summary
from facerefl.eval.plots import save_grid
from facerefl.eval.report import gather
from facerefl.eval.synthetic import evaluate_examples, example_name, summarize
from facerefl.export.plots import save_loss_plot, strict_json
from facerefl.fsutil import atomic_write_json, atomic_write_text
from facerefl.models.components.perceptual import load_lpips
from facerefl.models.networks import ReflectanceNetworks, shipped_dir
from facerefl.tasks.optimize import fit_settings, geometry_config, resolve_inputs

log = logging.getLogger(__name__)

__all__ = ["evaluate", "load_eval_networks", "weights_folder", "testset_folder", "GatherCallback"]


def weights_folder(cfg: DictConfig) -> Path:
    """``cfg.weights`` if set, else ``data/checkpoints/<cfg.checkpoint or cfg.preset>`` (the
    preset names its ``checkpoint``; the no-skip ablation sets another)."""
    return Path(str(cfg.weights)) if cfg.get("weights") else shipped_dir(str(cfg.get("checkpoint") or cfg.preset))


def load_eval_networks(cfg: DictConfig) -> ReflectanceNetworks:
    """The networks of :func:`weights_folder`, frozen."""
    return ReflectanceNetworks.from_safetensors(weights_folder(cfg), map_location=cfg.get("device", "cpu")).freeze()


def _workers(cfg: DictConfig) -> int:
    n = 1 if cfg.get("workers") is None else int(cfg.workers)
    if n < 1:
        raise InputError(f"workers must be >= 1, got {n}")
    if n > 1 and str(cfg.get("device", "cpu")) != "cpu":
        raise InputError("workers > 1 runs CPU worker processes; use workers=1 with device=cuda")
    return n


def testset_folder(cfg: DictConfig) -> Path:
    if cfg.get("testset"):
        return Path(str(cfg.testset)).expanduser()
    return default_out()


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _settings(cfg: DictConfig):
    """Fit and geometry settings; ``renderer=false`` (the no_renderer ablation) forces 0
    latent iterations and 0 albedo-refinement iterations whatever the config says."""
    from dataclasses import replace

    fit = fit_settings(cfg)
    if not cfg.renderer:
        fit = replace(fit, iterations=0, refine_iterations=0, delight=None)
    return fit, geometry_config(cfg)


def _config_dict(cfg: DictConfig) -> dict:
    keep = ("ablation_name", "renderer", "iterations", "fit", "geometry", "weights", "checkpoint", "preset",
            "n_examples", "testset", "probe_size", "figure7")
    c = OmegaConf.to_container(cfg, resolve=False)
    return {k: c.get(k) for k in keep}


def run_testset(cfg: DictConfig, out: Path) -> dict[str, Any]:
    """Table 1 (+ Figures 5 and 7) of the active ablation; returns the results document."""
    folder = testset_folder(cfg)
    if not (folder / "manifest.json").is_file():
        raise InputError(f"no test set in {folder}; build it with `python -m facerefl.data.make_testset` "
                         "(or `make data`), or pass testset=FOLDER")
    data = CachedDataset(folder)
    n = len(data) if cfg.get("n_examples") is None else min(int(cfg.n_examples), len(data))
    if n < 1:
        raise InputError(f"n_examples must be at least 1, got {cfg.n_examples}")
    nets = load_eval_networks(cfg)
    settings, geometry = _settings(cfg)
    name = str(cfg.ablation_name)

    def progress(r) -> None:
        if r.ok:
            _say(f"[{name}] {r.name}: albedo {r.scores.albedo.psnr:.2f} dB, image "
                 f"{r.image['psnr_final']:.2f} dB, {sum(r.seconds.values()):.1f} s")
        else:
            _say(f"[{name}] {r.name}: FAILED ({r.error})")

    pairs = ((example_name(data[i], i), data[i]) for i in range(n))
    workers = _workers(cfg)
    results = evaluate_examples(pairs, nets, settings, geometry, int(cfg.probe_size), progress,
                                workers=workers, weights=weights_folder(cfg))
    summary = summarize(results)
    doc = report.results_document(name, summary, [r.to_dict() for r in results],
                                  {**_config_dict(cfg), "iterations_run": settings.iterations,
                                   "refine_iterations_run": settings.refine_iterations})
    md = [f"# Evaluation: {name}\n", report.table1_markdown(summary, f"Table 1, {name}")]
    _figures(cfg, out, results, data)
    if cfg.figure7.enabled:
        doc["figure7"] = run_figure7(cfg, out, nets, settings, geometry, data)
        md.append(figure7_markdown(doc["figure7"]))
    md.append(report.DEFINITIONS)
    doc = strict_json(doc)
    atomic_write_json(out / report.RESULTS_FILE, doc)
    atomic_write_text(out / "report.md", "\n".join(md))
    print("\n".join(md))
    return doc


def _figures(cfg: DictConfig, out: Path, results, data) -> None:
    """Figure 5 (loss curves) and samples.png (input, reconstruction, albedo, truth)."""
    curves = {r.name: r.losses for r in results[: int(cfg.figure5.count)] if r.ok and len(r.losses) > 1}
    if curves:
        save_loss_plot(out / "loss_curves.png", curves,
                       f"Figure 5: loss vs iteration ({len(curves)} inputs, {cfg.ablation_name})",
                       ylabel="reconstruction loss (MSE, sRGB)")
    rows = []
    for i, r in enumerate(results[: int(cfg.sheet.count)]):
        ex = data[i]
        rows.append([ex.image[0], r.reconstruction,
                     None if r.albedo is None else albedo_srgb(r.albedo)[0], albedo_srgb(ex.albedo)[0]])
    if rows:
        save_grid(out / "samples.png", rows, int(cfg.sheet.size))


def run_figure7(cfg: DictConfig, out: Path, nets, settings, geometry, data) -> dict:
    """One face under ``figure7.lightings`` lightings → consistency numbers and figure."""
    f7 = cfg.figure7
    first = data[0]
    sizes = Sizes(image=int(first.image.shape[-1]), texture=int(first.albedo.shape[-1]),
                  detail=int(first.normal.shape[-1]))
    _say(f"[figure 7] rendering face {int(f7.seed)} under {int(f7.lightings)} lightings ({f7.renderer})")
    examples = relit_examples(int(f7.seed), int(f7.lightings), sizes, str(f7.renderer), int(f7.spp))
    results = evaluate_examples(examples, nets, settings, geometry, int(cfg.probe_size),
                                workers=_workers(cfg), weights=weights_folder(cfg))
    gt = examples[0][1].albedo
    summary = consistency_summary(results, gt)
    summary["seed"] = int(f7.seed)
    inputs = [ex.image[0] for _, ex in examples]
    albedos = [None if r.albedo is None else albedo_srgb(r.albedo)[0] for r in results]
    save_grid(out / "consistency.png", [inputs, albedos + [albedo_srgb(gt)[0]]], int(cfg.sheet.size))
    return summary


def figure7_markdown(s: dict) -> str:
    def f(v):
        return "–" if v is None else f"{v:.2f}"

    return (f"\n## Figure 7: consistency under lighting (face {s['seed']}, {s['ok']}/{s['lightings']} fitted)\n\n"
            f"Albedo PSNR between estimates (sRGB, skin region): mean {f(s['pairwise_psnr_mean'])} dB, "
            f"min {f(s['pairwise_psnr_min'])} dB; against the truth: mean "
            f"{f(s.get('psnr_vs_truth_mean'))} dB (scale-aligned {f(s.get('psnr_vs_truth_aligned_mean'))} dB); "
            f"mean per-texel std across lightings {f(s['texel_std_mean'])} (sRGB units).\n")


#: Files of a photo folder that count as photos; others (READMEs, ...) are listed as skipped.
PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp"})


def photo_files(cfg: DictConfig) -> tuple[list[Path], list[str]]:
    """The image files of ``cfg.photos`` and the names of the other files (skipped).

    Raises:
        InputError: the folder is missing or holds no image file.
    """
    files, _ = resolve_inputs(str(cfg.photos))
    paths = [p for p in files if p.suffix.lower() in PHOTO_SUFFIXES]
    skipped = [p.name for p in files if p.suffix.lower() not in PHOTO_SUFFIXES]
    if not paths:
        raise InputError(f"{cfg.photos} holds no image files ({', '.join(sorted(PHOTO_SUFFIXES))})")
    return paths, skipped


def run_photos(cfg: DictConfig, out: Path) -> dict[str, Any]:
    """Real-photo mode: success rate, face PSNR/SSIM, LPIPS, time, contact sheet. Files
    without an image suffix are skipped (listed in ``photos.json``); an image file the
    pipeline cannot fit (unreadable, no face) counts as a failure."""
    paths, skipped = photo_files(cfg)
    nets = load_eval_networks(cfg)
    settings, geometry = _settings(cfg)
    lpips = load_lpips("vgg")
    rows = []
    for p in paths:
        r = evaluate_photo(p, nets, settings, geometry, lpips)
        _say(f"[photos] {r.name}: " + (f"PSNR {r.psnr:.2f} dB, LPIPS {r.lpips:.3f}, {r.seconds:.1f} s"
                                       if r.ok else f"FAILED ({r.error})"))
        rows.append(r)
    summary = photos_summary(rows)

    atomic_write_json(out / "photos.json", strict_json({"summary": summary, "photos": [r.to_dict() for r in rows],
                                                    "skipped": skipped, "settings": _config_dict(cfg)}))
    md = "# Real photos\n\n" + photos_markdown(summary, rows)
    atomic_write_text(out / "photos.md", md)
    save_grid(out / "contact_sheet.png", [[r.photo, r.reconstruction, r.albedo] for r in rows],
              int(cfg.sheet.size))
    print(md)
    return {"summary": summary, "rows": rows, "skipped": skipped}


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Run the mode ``cfg`` selects (module docstring); returns its results.

    Raises:
        InputError / AssetMissingError: missing test set, weights, folders or assets.
    """
    torch.manual_seed(int(cfg.get("seed", 0)))
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    if cfg.get("gather"):
        md, js = gather(Path(str(cfg.gather)))
        print(md.read_text(encoding="utf-8"))
        return {"markdown": md, "json": js}
    out = Path(str(cfg.output_dir))
    if out.exists() and not out.is_dir():
        raise InputError(f"output_dir {out} is not a folder; choose another path")
    if cfg.get("photos"):
        photo_files(cfg)  # a missing or empty folder fails before the output folder is made
    out.mkdir(parents=True, exist_ok=True)
    if cfg.get("photos"):
        return run_photos(cfg, out)
    if cfg.consistency.enabled:
        return run_consistency(cfg, out)
    return run_testset(cfg, out)


def run_consistency(cfg: DictConfig, out: Path) -> dict[str, Any]:
    """The lighting-consistency benchmark (:mod:`facerefl.eval.benchmark`): the default
    pipeline (``fit.delight``) next to its latent phase, on ``consistency.faces`` faces
    under the named lightings; writes ``consistency.json``, ``consistency.md`` and
    ``consistency_sheet.png`` (inputs and both pipelines' albedos of the first face)."""
    from facerefl.assets import cache_dir
    from facerefl.data.assemble import Sizes
    from facerefl.eval.benchmark import PAPER, run_benchmark
    from facerefl.eval.consistency import BENCHMARK_LIGHTINGS
    from facerefl.eval.metrics import albedo_srgb
    from facerefl.eval.plots import save_grid

    c = cfg.consistency
    known = {lt.name: lt for lt in BENCHMARK_LIGHTINGS}
    names = list(c.lightings) if c.get("lightings") else list(known)
    bad = [n for n in names if n not in known]
    if bad:
        raise InputError(f"unknown consistency.lightings {bad}; choose from {list(known)}")
    settings, geometry = _settings(cfg)
    if settings.delight is None:
        raise InputError("the consistency benchmark compares the delighting with the latent phase; "
                         "set fit.delight.enabled=true")
    if str(c.renderer) not in ("mc", "sh"):
        raise InputError(f"consistency.renderer must be mc or sh, got {c.renderer!r}")
    if int(c.faces) < 1 or not names:
        raise InputError(f"the consistency benchmark needs at least one face and one lighting; "
                         f"got consistency.faces={c.faces} and {len(names)} lightings")
    seeds = [int(c.first_seed) + k for k in range(int(c.faces))]
    workers = _workers(cfg)
    nets = None if workers > 1 else load_eval_networks(cfg)
    sizes = Sizes(image=int(c.image), texture=int(c.texture), detail=int(c.detail))

    def progress(j: dict) -> None:
        if j["ok"]:
            p = j["pipelines"]
            _say(f"[consistency] {j['seed']} {j['lighting']}: albedo paper {p[PAPER]['albedo_psnr']:.2f} / "
                 f"default {p['default']['albedo_psnr']:.2f} dB")
        else:
            _say(f"[consistency] {j['seed']} {j['lighting']}: FAILED ({j.get('error')})")

    renders = Path(str(c.cache)) if c.get("cache") else cache_dir() / "synthetic" / "consistency"
    res = run_benchmark(seeds, [known[n] for n in names], sizes, int(c.spp),
                        renders, nets, settings, geometry,
                        consistency_variants(settings.delight, c.get("variants")), workers=workers,
                        weights=weights_folder(cfg),
                        progress=progress, renderer=str(c.renderer))
    results = res.pop("_results")
    first = [j for j in results if j["seed"] == seeds[0] and j["ok"]]
    if first:
        from facerefl.eval.benchmark import load_or_render

        inputs = [load_or_render(renders, seeds[0], known[j["lighting"]],
                                 sizes, int(c.spp), str(c.renderer)).image[0] for j in first]
        rows = [inputs] + [[albedo_srgb(j["pipelines"][n]["albedo"])[0] for j in first] for n in (PAPER, "default")]
        rows[-1].append(albedo_srgb(first[0]["gt_albedo"])[0])
        save_grid(out / "consistency_sheet.png", rows, int(cfg.sheet.size))
    md = consistency_markdown(res, names)
    atomic_write_json(out / "consistency.json", strict_json(res))
    atomic_write_text(out / "consistency.md", md)
    print(md)
    return res


def consistency_variants(default, extra) -> dict:
    """``{"default": the configured delighting, name: it with overrides, ...}`` from
    ``consistency.variants`` (a mapping name → ``fit.delight`` overrides): ideas compared
    side by side on the same fits."""
    from dataclasses import asdict

    from facerefl.fit.delight import DelightSettings

    out = {"default": default}
    for name, overrides in dict(extra or {}).items():
        merged = {**asdict(default), **dict(overrides)}
        out[str(name)] = DelightSettings.from_config(merged)
        if out[str(name)] is None:
            raise InputError(f"consistency.variants.{name} turns the delighting off; the latent phase is always reported")
    return out


def consistency_markdown(res: dict, lightings: list[str]) -> str:
    """The benchmark's summary table (one row per pipeline)."""
    def f(v, d=2):
        return "–" if v is None else f"{v:.{d}f}"

    rows = ["| pipeline | pairwise albedo PSNR | gain-aligned | min pair | vs truth | aligned vs truth | "
            "luminance CoV | light PSNR | reconstruction PSNR |", "|---|---|---|---|---|---|---|---|---|"]
    for name, s in res["summary"].items():
        label = "latent phase (no delighting)" if name == "paper" else f"{name} (delighting)"
        rows.append(f"| {label} | {f(s['pairwise_psnr_mean'])} | {f(s['pairwise_psnr_aligned_mean'])} | "
                    f"{f(s['pairwise_psnr_min'])} | {f(s['psnr_vs_truth_mean'])} | {f(s['albedo_aligned_psnr'])} | "
                    f"{f(s['luminance_cov'], 3)} | {f(s['light_psnr'])} | {f(s['recon_psnr'])} |")
    return (f"# Lighting consistency: {len(res['faces'])} faces × {len(lightings)} lightings "
            f"({res['fitted']} of {res['examples']} fitted)\n\nLightings: {', '.join(lightings)}.\n\n"
            + "\n".join(rows) + "\n\nPSNR in dB on sRGB albedo over the skin region; pairwise = every pair "
            "of one face's albedos; gain-aligned = the second of each pair scaled per channel to the first.\n")


class GatherCallback(Callback):
    """At the end of a multirun, write the sweep folder's combined ablation table."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        folder = Path(str(config.hydra.sweep.dir))
        try:
            md, _ = gather(folder)
        except InputError as e:
            log.warning("no ablation table: %s", e)
            return
        print(md.read_text(encoding="utf-8"))
