"""``make train``: train every network of a preset in order and ship the weights.

``python -m facerefl.tasks.train_all [--preset cpu] [--out data/checkpoints/cpu]``

Order (each stage is one :func:`facerefl.tasks.train.train` call on the composed
``conf/train.yaml`` with ``experiment=<stage>``):

1. the albedo, specular and normal autoencoders (E_*, D_*);
2. the three detail enhancers R_*, trained on the outputs of the decoders just trained
   (``model.autoencoder_weights`` points at stage 1's export, never at downsampled targets);
3. the SH light regressor;
4. the albedo-level regressor (beyond the paper: the fit's gauge may take its level).

The stage exports are assembled into a :class:`~facerefl.models.networks.ReflectanceNetworks`,
written as safetensors into ``--out`` with ``metrics.json`` and ``MODEL_CARD.md`` (data,
steps, wall time, validation metrics on held-out synthetic examples generated on the fly).

``python -m facerefl.tasks.train_all --no-skip [--base data/checkpoints/cpu]`` trains the
ablation of section 8.4.1 instead (export ``data/checkpoints/<preset>_noskip``): only the
three autoencoders, without skip connections (``experiment=<kind>_ae_noskip``), with the
same data, steps and batch as the full run. The detail enhancers and the light regressor
are the base's, unchanged (retraining the enhancers on the new decoders' outputs would
cost ~12 CPU-minutes): the export borrows them from the base folder instead of copying
them (``base`` in its ``config.json``), and is validated on the base's stored validation set.

``--data-commit REV`` builds the training cache with the data code of git revision ``REV``
(``git archive`` of :data:`DATA_CODE_PATHS`) rather than the checked-out one, to reproduce
the data of an earlier run: the shipped ``cpu`` cache was made by the data code of 729ddba.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict
from safetensors.torch import load_file

from facerefl.assets import AssetMissingError
from facerefl.data import make_cache
from facerefl.data.cache import CachedDataset, cache_count
from facerefl.data.datamodule import VAL_SEED
from facerefl.data.types import ReflectanceBatch, collate_reflectance
from facerefl.errors import InputError
from facerefl.fsutil import atomic_write_text, replace_dir
from facerefl.models.clock import ElapsedTime
from facerefl.models.components.heads import KINDS
from facerefl.models.evaluation import evaluate_networks
from facerefl.models.networks import BASE_KEY, CONFIG_FILE, NetworksConfig, ReflectanceNetworks
from facerefl.models.serialization import save_state_atomic
from facerefl.resources import CHECKPOINTS_DIR, CONF_DIR, source_checkout
from facerefl.tasks.train import train

REPO = source_checkout()
#: ``level``: the albedo-level regressor (beyond the paper; :mod:`facerefl.models.components.level`).
STAGES = tuple(f"{k}_ae" for k in KINDS) + tuple(f"{k}_enh" for k in KINDS) + ("light", "level")
#: Stages whose export is a whole network file of the checkpoint (not a branch's half).
WHOLE_STAGES = ("light", "level")
#: Stages of the no-skip ablation (section 8.4.1); everything else comes from the base.
NOSKIP_STAGES = tuple(f"{k}_ae_noskip" for k in KINDS)
#: What the data generator needs from a git revision (``--data-commit``): the package and,
#: in revisions before the table became package data, the SH light table in ``data/``
#: (paths a revision lacks are skipped).
DATA_CODE_PATHS = ("facerefl", "data/sh_lights.json")
#: ``python -c`` program running make_cache from the snapshot folder given as argv[1]
#: (checked to be the package actually imported), with the remaining arguments.
_SNAPSHOT_MAKE_CACHE = (
    "import sys; from pathlib import Path; import facerefl; "
    "assert Path(facerefl.__file__).resolve().is_relative_to(Path(sys.argv[1]).resolve()), facerefl.__file__; "
    "from facerefl.data import make_cache; sys.exit(make_cache.main(sys.argv[2:]))"
)
#: Validation set of the model card: the data module's first ``FULL_VAL`` validation seeds,
#: stored (float16) as ``VAL_FILE`` beside the weights; ``QUICK_VAL`` = the first few of them.
QUICK_VAL, FULL_VAL = 8, 64
VAL_FILE = "validation.safetensors"


def ensure_cache(folder: Path, count: int, data_cfg, workers: int = 2, code: Path | None = None,
                 threads: int = 1, seed: int | None = None) -> Path:
    """Generate ``count`` training examples into ``folder`` once (one shard, so shuffled
    reads never reload shards), with the sizes of the composed data config and its training
    seeds (from ``seed`` instead when given).

    ``code``: a data-code snapshot (:func:`data_code_snapshot`) to generate with, in a
    subprocess with ``threads`` OpenMP threads; default the data code imported here.
    The examples do not depend on ``workers`` (generator processes).
    """
    manifest = folder / "manifest.json"
    if manifest.is_file():
        m = json.loads(manifest.read_text(encoding="utf-8"))
        have = m.get("count", 0) + len(m.get("skipped", {}))  # seeds the generator rejected count too
        if have != count:
            raise InputError(f"{folder} holds a cache of {have} seeds, not {count}; "
                             "remove it or pass another --run-root")
        return folder
    argv = ["--out", str(folder), "--n", str(count), "--seed", str(data_cfg.train_seed if seed is None else seed),
            "--image", str(data_cfg.image), "--texture", str(data_cfg.texture),
            "--detail", str(data_cfg.detail), "--shard-size", str(count), "--workers", str(workers)]
    if code is None:

        rc = make_cache.main(argv)
    else:
        env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": str(threads)}
        rc = subprocess.run([sys.executable, "-c", _SNAPSHOT_MAKE_CACHE, str(code), *argv],
                            cwd=code, env=env).returncode
    if rc != 0:
        raise InputError(f"could not build the training cache in {folder} (see above)")
    return folder


def data_code_snapshot(rev: str, root: Path) -> tuple[str, Path]:
    """Extract :data:`DATA_CODE_PATHS` of git revision ``rev`` into ``root/src-<hash>`` once.

    Returns the full commit hash and the folder (put it first on ``PYTHONPATH``).
    """
    def git(*args: str) -> bytes:
        try:
            return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError) as e:
            err = getattr(e, "stderr", b"") or b""
            raise InputError(f"--data-commit {rev}: `git {' '.join(args)}` failed in {REPO} "
                             f"({err.decode(errors='replace').strip() or e}); it needs a git checkout "
                             "holding that revision") from None

    full = git("rev-parse", "--verify", "--end-of-options", f"{rev}^{{commit}}").decode().strip()
    dest = root / f"src-{full[:12]}"
    if not (dest / "facerefl" / "__init__.py").is_file():
        present = [p for p in DATA_CODE_PATHS
                   if subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{full}:{p}"],
                                     capture_output=True).returncode == 0]
        tar = git("archive", "--format=tar", full, "--", *present)
        staged = root / f".src-{full[:12]}.tmp"
        if staged.exists():
            shutil.rmtree(staged)
        staged.mkdir(parents=True)
        with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
            tf.extractall(staged, filter="data")
        replace_dir(staged, dest)
    return full, dest


def compose_stage(stage: str, run_root: Path, overrides: list[str]) -> OmegaConf:
    """Compose ``conf/train.yaml`` for one stage with outputs under ``run_root/stage``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose(config_name="train", return_hydra_config=True,
                      overrides=[f"experiment={stage}", *overrides])
    with open_dict(cfg):
        cfg.paths.root_dir = str(REPO)
        cfg.paths.output_dir = str(run_root / stage)
        cfg.hydra.runtime.output_dir = str(run_root / stage)
        cfg.hydra.job.num = 0
    HydraConfig().set_config(cfg)
    return cfg


def cache_batches(folder: Path, batch_size: int = 8, count: int | None = None) -> list:
    """A cache folder as a list of :class:`~facerefl.data.types.ReflectanceBatch`, in order;
    the first ``count`` examples only when given."""
    ds = CachedDataset(folder)
    n = len(ds) if count is None else min(count, len(ds))
    return [collate_reflectance([ds[j] for j in range(i, min(i + batch_size, n))])
            for i in range(0, n, batch_size)]


def run_stages(stages: tuple[str, ...], steps: dict[str, int], common: list[str], run_root: Path,
               reuse: bool, record: dict, per_stage: dict[str, list[str]] | None = None):
    """Train ``stages`` in order (one :func:`train` call each, exports and records under
    ``run_root/stages``), appending their records to ``record["stages"]``. ``per_stage``
    adds overrides to single stages (after ``common``).

    With ``reuse``, a stage whose export and record exist is not trained again, and a stage
    that was interrupted resumes from its last checkpoint (:func:`resume_point`). Returns
    the composed config of the last stage.
    """
    stage_dir = run_root / "stages"
    cfg = None
    for stage in stages:
        extra = [f"export_path={stage_dir / stage}.safetensors", f"trainer.max_steps={steps[stage]}",
                 f"trainer.val_check_interval={min(steps[stage], 500)}"]
        if stage.endswith("_enh"):
            extra.append(f"model.autoencoder_weights={stage_dir / stage.replace('_enh', '_ae')}.safetensors")
        cfg = compose_stage(stage, run_root, common + extra + list((per_stage or {}).get(stage, [])))
        done = stage_dir / f"{stage}.json"
        if reuse and done.is_file() and (stage_dir / f"{stage}.safetensors").is_file():
            record["stages"].append(json.loads(done.read_text(encoding="utf-8")))
            print(f"[train_all] {stage}: reusing {stage_dir / stage}.safetensors", flush=True)
            continue
        partial = resume_point(run_root / stage) if reuse else None
        if partial:
            with open_dict(cfg):
                cfg.ckpt_path = str(partial)
            print(f"[train_all] {stage}: resuming from {partial}", flush=True)
        print(f"[train_all] {stage}: {steps[stage]} steps", flush=True)
        t0 = time.perf_counter()
        result = train(cfg)
        wall = next((c.seconds for c in result.trainer.callbacks if isinstance(c, ElapsedTime)),
                    time.perf_counter() - t0)
        record["stages"].append({"stage": stage, "steps": int(result.trainer.global_step),
                                 "batch_size": int(cfg.data.batch_size), "wall_s": wall,
                                 "metrics": result.metrics})
        key = "val/rms_log" if stage.endswith("level") else "val/psnr"
        print(f"[train_all] {stage}: {wall:.0f} s, {key} {result.metrics.get(key)}", flush=True)
        atomic_write_text(stage_dir / f"{stage}.json", json.dumps(record["stages"][-1], indent=2) + "\n",
                          make_parents=True)
        # the trainer and data module hold the training cache; let them go before the next
        # stage loads its own (two 6400-example stages in one process ran out of memory)
        del result
        gc.collect()
    return cfg


def resume_point(stage_root: Path) -> Path | None:
    """The last checkpoint of an interrupted stage run in ``stage_root`` (None: none)."""
    last = stage_root / "checkpoints" / "last.ckpt"
    return last if last.is_file() else None


def seed_stages(checkpoint: Path, stage_dir: Path) -> list[str]:
    """Write the stage exports and records of an exported checkpoint (a folder written by
    :func:`train_all`, with its ``metrics.json``) into ``stage_dir``, for the stages that
    have none there; returns the stages written.

    A run continues across sessions this way: the exported weights are committed, the
    cache is rebuilt from its seeds, and ``--reuse`` then trains only the stages missing
    (delete a seeded stage's two files to train it again). Each kind's weights split into
    the autoencoder (``<kind>_ae``) and the enhancer (keys under ``enhancer.``).

    Raises:
        InputError: ``checkpoint`` is not such a folder.
    """
    record_path = checkpoint / "metrics.json"
    if not record_path.is_file():
        raise InputError(f"no metrics.json in {checkpoint}; --stages-from takes a folder written by train_all")
    config = checkpoint / CONFIG_FILE
    if config.is_file() and BASE_KEY in json.loads(config.read_text(encoding="utf-8")):
        raise InputError(f"{checkpoint} borrows weights from a base folder; --stages-from takes a full checkpoint")
    records = {r["stage"]: r for r in json.loads(record_path.read_text(encoding="utf-8")).get("stages", [])}
    written = []
    for stage in STAGES:
        if (stage_dir / f"{stage}.safetensors").is_file() or stage not in records:
            continue
        kind = stage.rsplit("_", 1)[0]
        source = checkpoint / f"{stage if stage in WHOLE_STAGES else kind}.safetensors"
        if not source.is_file():
            raise InputError(f"{source} is missing; --stages-from takes a full checkpoint")
        state = load_file(str(source))
        if stage not in WHOLE_STAGES:
            enh = stage.endswith("_enh")
            state = {k: v for k, v in state.items() if k.startswith("enhancer.") == enh}
        save_state_atomic(state, stage_dir / f"{stage}.safetensors")
        atomic_write_text(stage_dir / f"{stage}.json", json.dumps(records[stage], indent=2) + "\n",
                          make_parents=True)
        written.append(stage)
    return written


def assemble(sizes: dict, stage_dir: Path) -> ReflectanceNetworks:
    """Build the networks from the stage exports (``<kind>_ae``, ``<kind>_enh``, ``light``,
    and ``level`` when the sizes name one and its export exists)."""
    cfg = NetworksConfig.from_dict(sizes)
    if not (stage_dir / "level.safetensors").is_file():
        cfg = cfg.without_level()
    nets = ReflectanceNetworks(cfg)
    for k in KINDS:
        state = {**load_file(str(stage_dir / f"{k}_ae.safetensors")),
                 **load_file(str(stage_dir / f"{k}_enh.safetensors"))}
        nets.branch(k).load_state_dict(state)
    nets.light.load_state_dict(load_file(str(stage_dir / "light.safetensors")))
    if nets.level is not None:
        nets.level.load_state_dict(load_file(str(stage_dir / "level.safetensors")))
    return nets


def assemble_noskip(base: ReflectanceNetworks, stage_dir: Path) -> ReflectanceNetworks:
    """``base`` with every autoencoder replaced by the no-skip one exported to
    ``stage_dir/<kind>_ae_noskip.safetensors``; enhancers and light regressor unchanged."""
    cfg = replace(base.cfg, **{k: replace(base.cfg.branch(k), use_skips=False) for k in KINDS})
    nets = ReflectanceNetworks(cfg)
    for k in KINDS:
        enhancer = {f"enhancer.{n}": t for n, t in base.branch(k).enhancer.state_dict().items()}
        nets.branch(k).load_state_dict({**load_file(str(stage_dir / f"{k}_ae_noskip.safetensors")), **enhancer})
    nets.light.load_state_dict(base.light.state_dict())
    if base.level is not None:
        nets.level.load_state_dict(base.level.state_dict())
    return nets


def validation_batches(data_cfg, count: int, effects: bool | None = None) -> list:
    """The first ``count`` validation examples of the configured data module (on the fly);
    with ``effects`` given, with the realism effects on or off whatever the config says."""
    from hydra.utils import instantiate

    extra = {} if effects is None else {"effects": effects}
    dm = instantiate(data_cfg, num_val=count, val_cache_dir=None, cache_dir=None, **extra)
    dm.setup("validate")
    return list(dm.val_dataloader())


def save_validation_set(batches: list, path: Path) -> None:
    """Store the validation maps (float16) next to the weights, so the model card's numbers
    can be re-checked without the data generator (whose output may change between versions)."""
    fields = ("texture", "albedo", "specular", "normal", "light")
    tensors = {f: torch.cat([getattr(b, f) for b in batches]).half() for f in fields}
    save_state_atomic(tensors, path)


def load_validation_set(path: Path, batch_size: int = 8, count: int | None = None) -> list:
    """Batches of :class:`~facerefl.data.types.ReflectanceBatch` (float32) from
    :func:`save_validation_set`; the first ``count`` examples only when given."""
    t = {k: v.float() for k, v in load_file(str(path)).items()}
    n = len(t["texture"]) if count is None else min(count, len(t["texture"]))
    return [ReflectanceBatch(**{k: v[i:min(i + batch_size, n)] for k, v in t.items()})
            for i in range(0, n, batch_size)]


def _stage_rows(stages: list[dict], note: str = "") -> list[str]:
    rows = []
    for s in stages:
        psnr = s["metrics"].get("val/psnr")
        rows.append(f"| {s['stage']} | {s['steps']} | {s['batch_size']} | {s['wall_s']:.0f}{note} | "
                    f"{'' if psnr is None else f'{psnr:.2f}'} |")
    return rows


def _validation_section(m: dict) -> list[str]:
    lines = [
        f"## Validation ({m['num_examples']} held-out synthetic examples, before any fitting)",
        "",
        "PSNR in dB (peak 1; normals compared as (n+1)/2; light as radiance on the sphere with",
        "the ground truth's peak). Maps are compared at the enhancer output size; `decoder` is",
        "the decoder output upsampled bilinearly. Detail = high-pass band (map minus Gaussian",
        "blur, σ = 1 texel): PSNR against the ground-truth band, and energy relative to it.",
        "",
        "| map | PSNR decoder | PSNR enhanced | detail PSNR decoder | detail PSNR enhanced | detail energy decoder | detail energy enhanced |",
        "|---|---|---|---|---|---|---|",
    ]
    for k in KINDS:
        lines.append(
            f"| {k} | {m[f'{k}/psnr_decoder']:.2f} | {m[f'{k}/psnr']:.2f} | "
            f"{m[f'{k}/detail_psnr_decoder']:.2f} | {m[f'{k}/detail_psnr']:.2f} | "
            f"{m[f'{k}/detail_energy_decoder']:.3f} | {m[f'{k}/detail_energy']:.3f} |"
        )
    lines += ["", f"| light | | {m['light/psnr']:.2f} | | | | |", ""]
    if "level/encoders_rms_log" in m:
        lines += ["Albedo level (mean linear albedo over the valid skin, per channel): root-mean-square",
                  "error of its natural log, the enhanced albedo's mean"
                  + (" and the level regressor's" if "level/rms_log" in m else "") + ":",
                  "", "| level from | RMS log error |", "|---|---|",
                  f"| encoders (enhanced albedo) | {m['level/encoders_rms_log']:.3f} |"]
        if "level/rms_log" in m:
            lines.append(f"| level regressor | {m['level/rms_log']:.3f} |")
        lines.append("")
    lines += ["`metrics.json` holds these numbers (and `quick`, the same metrics on the first "
              f"{QUICK_VAL} examples, which the test suite re-checks).", ""]
    return lines


def _data_and_stages(record: dict) -> list[str]:
    """The model card's data section and the head of its training table (one row per
    stage trained in this run)."""
    return [
        "## Data",
        "",
        f"- training: {record['data']['train']}",
        f"- validation: {record['data']['val']}",
        *([f"- note: {record['note']}"] if record.get("note") else []),
        "",
        "## Training",
        "",
        "| stage | optimizer steps | batch | wall time (s) | final val PSNR (dB) |",
        "|---|---|---|---|---|",
        *_stage_rows(record["stages"]),
    ]


_STEPS_NOTE = [
    "Optimizer steps are Lightning's `global_step`: for the enhancers (manual GAN",
    "optimization) the generator and the discriminator steps both count, and only the",
    "generator steps during the warm-up (`adversarial_start_step` batches), so an enhancer",
    "saw `warm-up + (steps - warm-up) / 2` batches. An empty PSNR cell means the stage ended",
    "before its first validation; the table below evaluates every network afterwards.",
]


def model_card(preset: str, record: dict, name: str | None = None) -> str:
    """Markdown model card from the run record (stages, data, metrics); ``name``: the
    export folder's name under ``data/checkpoints`` (default the preset's)."""
    m = record["metrics"]
    name = name or preset
    lines = [
        f"# facerefl networks `{name}`, `{preset}` preset",
        "",
        "Encoders/decoders, SRGAN detail enhancers and the SH light regressor of",
        "\"Single-view facial reflectance inference with a differentiable renderer\" (Geng et al.",
        "2021), trained by `python -m facerefl.tasks.train_all` on synthetic data only.",
        f"Load with `ReflectanceNetworks.load_shipped(\"{name}\")` (safetensors; never unpickled).",
        "",
        *_data_and_stages(record),
        "",
        *_STEPS_NOTE,
        "",
        f"Total training wall time {record['total_wall_s']:.0f} s (sum of the stages) on {record['machine']}.",
        "",
        *_validation_section(m),
    ]
    clean = record.get("metrics_clean")
    if clean:
        lines += [
            "## Validation without the realism effects",
            "",
            f"The same {clean['num_examples']} validation seeds generated with the effects off (no glasses,",
            "hair, sun, makeup, teeth, stubble or camera effects; `docs/synthetic.md`), as the",
            "validation sets of cards before the effects were. PSNR in dB:",
            "",
            "| map | PSNR decoder | PSNR enhanced |",
            "|---|---|---|",
            *(f"| {k} | {clean[f'{k}/psnr_decoder']:.2f} | {clean[f'{k}/psnr']:.2f} |" for k in KINDS),
            f"| light | | {clean['light/psnr']:.2f} |",
            "",
        ]
    return "\n".join(lines)


def noskip_model_card(name: str, record: dict) -> str:
    """Markdown model card of the no-skip ablation (:func:`train_noskip`'s record)."""
    m, base = record["metrics"], record["base"]
    b, bname = base.get("metrics") or {}, base["name"]
    enh_s = sum(s["wall_s"] for s in base["stages"] if s["stage"].endswith("_enh"))
    lines = [
        f"# facerefl networks, `{name}`: no skip connections (section 8.4.1 ablation)",
        "",
        f"The `{bname}` networks with every encoder/decoder pair (E_*, D_*) trained again without",
        "the skip connections F^1..F^3, for the ablation of section 8.4.1 of \"Single-view facial",
        "reflectance inference with a differentiable renderer\" (Geng et al. 2021); trained by",
        f"`{record['command']}`",
        f"on synthetic data only, with the data, steps and batch of `{bname}`'s autoencoders.",
        f"Load with `ReflectanceNetworks.load_shipped(\"{name}\")` (safetensors; never unpickled).",
        "",
        f"The detail enhancers R_* and the SH light regressor are `{bname}`'s, unchanged: retraining",
        f"the enhancers on the new decoders' outputs would cost about {enh_s / 60:.0f} CPU-minutes "
        f"(the `{bname}` enhancer",
        "stages took that long), which this run did not spend. They were trained on the outputs of",
        "the decoders *with* skips, so the `enhanced` columns below measure them on inputs unlike",
        "their training data; the `decoder` columns are the ablation proper.",
        "",
        f"Nothing of `{bname}` is copied: `config.json` names `{base['folder']}` as its base folder,",
        "with the sha256 of each file it borrows from, and the loader takes every tensor missing",
        "here from there (a changed base file is refused). The `<kind>.safetensors` files here",
        "hold only the autoencoders; there is no `light.safetensors`.",
        "",
        *_data_and_stages(record),
        *_stage_rows([s for s in base["stages"] if not s["stage"].endswith("_ae")], f" (`{bname}`, reused)"),
        "",
        *_STEPS_NOTE,
        "",
        f"Total training wall time {record['total_wall_s']:.0f} s (the {len(record['stages'])} stages trained "
        f"here) on {record['machine']}.",
        "",
        *_validation_section(m),
    ]
    if b:
        lines += [
            f"## Against `{bname}` ({bname}'s numbers from its metrics.json, on "
            + (f"the same {m['num_examples']} examples)" if b.get("num_examples") == m["num_examples"]
               else f"its {b.get('num_examples')} examples, not these {m['num_examples']})"),
            "",
            f"| map | PSNR decoder, `{bname}` | PSNR decoder, no skips | Δ | detail PSNR decoder, `{bname}` "
            "| detail PSNR decoder, no skips | PSNR enhanced, "
            f"`{bname}` | PSNR enhanced, no skips |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for k in KINDS:
            d0, d1 = b[f"{k}/psnr_decoder"], m[f"{k}/psnr_decoder"]
            lines.append(f"| {k} | {d0:.2f} | {d1:.2f} | {d1 - d0:+.2f} | {b[f'{k}/detail_psnr_decoder']:.2f} | "
                         f"{m[f'{k}/detail_psnr_decoder']:.2f} | {b[f'{k}/psnr']:.2f} | {m[f'{k}/psnr']:.2f} |")
        lines.append("")
    shift = record.get("train_code_val")
    if shift:
        s0, s1 = shift["base"], shift["metrics"]
        lines += [
            "## Validation with the training data's generator",
            "",
            f"The validation set above is `{bname}`'s, made by the data code of its time, which may",
            "differ from that of the training cache (see the note); such a shift need not cost both",
            f"networks alike. The same metrics on the first {s1['num_examples']} of its validation seeds as",
            f"generated by the training cache's data code ({shift['source']}), both networks evaluated",
            "by this run:",
            "",
            f"| map | PSNR decoder, `{bname}` | PSNR decoder, no skips | Δ | PSNR enhanced, `{bname}` "
            "| PSNR enhanced, no skips |",
            "|---|---|---|---|---|---|",
        ]
        for k in KINDS:
            d0, d1 = s0[f"{k}/psnr_decoder"], s1[f"{k}/psnr_decoder"]
            lines.append(f"| {k} | {d0:.2f} | {d1:.2f} | {d1 - d0:+.2f} | {s0[f'{k}/psnr']:.2f} | "
                         f"{s1[f'{k}/psnr']:.2f} |")
        lines += ["", f"| light | | | | {s0['light/psnr']:.2f} | {s1['light/psnr']:.2f} |", ""]
    return "\n".join(lines)


def _new_record(preset: str, note: str, threads: int) -> dict:
    return {"preset": preset, "stages": [], "note": note,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {threads} torch thread(s)"}


def _shown_path(path: str | None) -> str:
    """``path`` as a model card may show it: relative to the checkout when inside it, else
    the folder's name alone (a card names no machine path)."""
    if not path:
        return "on-the-fly"
    p = Path(path).resolve()
    return p.relative_to(REPO).as_posix() if p.is_relative_to(REPO) else f"<run root>/.../{p.name}"


def _data_record(cfg, val: str) -> dict:
    data_cfg = cfg.data
    cache = OmegaConf.select(cfg, "data.cache_dir")
    folders = [cache] if cache is None or isinstance(cache, str) else list(cache)
    count = f"{cache_count(folders)} examples in " if cache else ""
    return {
        "train": (f"{count}{' + '.join(_shown_path(f) for f in folders)} "
                  f"({data_cfg._target_}, texture {data_cfg.texture}², detail {data_cfg.detail}²)"),
        "val": val,
    }


def train_all(preset: str, out: Path, steps: dict[str, int], overrides: list[str], run_root: Path,
              threads: int = 1, reuse: bool = False, note: str = "", val_examples: int = FULL_VAL,
              only: tuple[str, ...] | None = None) -> dict:
    """Run every stage, assemble, evaluate and export; returns the run record.

    With ``reuse``, a stage whose export and record (``stages/<stage>.json``) exist under
    ``run_root`` is not trained again (e.g. after retuning one later stage).

    ``only``: train just these stages (in :data:`STAGES` order) and return their record
    without assembling or exporting, so that independent stages can train in parallel
    processes on one ``run_root``; a later run with ``reuse`` assembles them.
    """
    stage_dir = run_root / "stages"
    common = [f"preset={preset}", "logger=csv", f"torch_threads={threads}", *overrides]
    torch.set_num_threads(threads)
    record = _new_record(preset, note, threads)
    if only is not None:
        run_stages(tuple(s for s in STAGES if s in only), steps, common, run_root, reuse, record)
        record["metrics"] = {}
        return record
    cfg = run_stages(STAGES, steps, common, run_root, reuse, record)
    record["total_wall_s"] = sum(st["wall_s"] for st in record["stages"])
    sizes = OmegaConf.to_container(cfg.sizes, resolve=True)
    nets = assemble(sizes, stage_dir)
    data_cfg = cfg.data
    record["data"] = _data_record(cfg, (
        f"first {val_examples} validation seeds of {data_cfg._target_} (seeds disjoint from "
        f"training), stored as {VAL_FILE} (float16)"))
    save_validation_set(validation_batches(data_cfg, val_examples), out / VAL_FILE)
    record["metrics"] = evaluate_networks(nets, load_validation_set(out / VAL_FILE))
    record["quick"] = evaluate_networks(nets, load_validation_set(out / VAL_FILE, count=min(QUICK_VAL, val_examples)))
    if data_cfg.get("effects"):
        # the same seeds without the realism effects: comparable with earlier cards
        record["metrics_clean"] = evaluate_networks(nets, validation_batches(data_cfg, val_examples, effects=False))
    record["data_config"] = OmegaConf.to_container(data_cfg, resolve=True)
    nets.save_safetensors(out, extra={"trained_by": "facerefl.tasks.train_all"})
    atomic_write_text(out / "metrics.json", json.dumps(record, indent=2) + "\n", make_parents=True)
    atomic_write_text(out / "MODEL_CARD.md", model_card(preset, record, out.name), make_parents=True)
    return record


def train_noskip(preset: str, out: Path, base: Path, steps: dict[str, int], overrides: list[str],
                 run_root: Path, threads: int = 1, reuse: bool = False, note: str = "",
                 val_examples: int = FULL_VAL, command: str = "",
                 train_code_val: tuple[str, Path] | None = None) -> dict:
    """The no-skip ablation (section 8.4.1): train :data:`NOSKIP_STAGES`, put them in place of
    the autoencoders of the checkpoint ``base`` (whose enhancers and light regressor stay),
    evaluate on ``base``'s stored validation set and export into ``out`` with ``base`` as
    its base folder (unchanged tensors are not copied). Returns the run record.

    ``train_code_val``: (description, cache folder) of validation examples made by the
    training data's generator, on which both networks are also evaluated (``record["train_code_val"]``).

    Raises:
        InputError: ``base`` is not a full checkpoint of ``preset``'s sizes with a validation set.
    """
    base_nets = ReflectanceNetworks.from_safetensors(base)
    base_record = json.loads((base / "metrics.json").read_text(encoding="utf-8")) \
        if (base / "metrics.json").is_file() else {}
    common = [f"preset={preset}", "logger=csv", f"torch_threads={threads}", *overrides]
    sizes = compose_stage(NOSKIP_STAGES[0], run_root, common).sizes
    if NetworksConfig.from_dict(OmegaConf.to_container(sizes, resolve=True)).without_level() != base_nets.cfg.without_level():
        raise InputError(f"{base} does not hold full (skip) networks of the {preset!r} preset's sizes; "
                         f"pass --base <the {preset} checkpoint> or --preset <its preset>")
    val_file = base / VAL_FILE
    if not val_file.is_file():
        raise InputError(f"no {VAL_FILE} in {base}; --base must be a full checkpoint exported by train_all")
    torch.set_num_threads(threads)
    record = _new_record(preset, note, threads)
    record["ablation"] = "no_skip"
    record["command"] = command
    cfg = run_stages(NOSKIP_STAGES, steps, common, run_root, reuse, record)
    record["total_wall_s"] = sum(st["wall_s"] for st in record["stages"])
    nets = assemble_noskip(base_nets, run_root / "stages")
    rel_base = Path(os.path.relpath(base.resolve(), out.resolve())).as_posix()
    record["base"] = {"name": base.name, "folder": rel_base,
                      "stages": [s for s in base_record.get("stages", []) if not s["stage"].endswith("_ae")],
                      "metrics": base_record.get("metrics")}
    batches = load_validation_set(val_file, count=val_examples)
    record["data"] = _data_record(cfg, (
        f"the {sum(b.batch_size for b in batches)} examples of `{base.name}`'s {VAL_FILE} "
        f"({rel_base}/{VAL_FILE}, not copied here)"))
    record["metrics"] = evaluate_networks(nets, batches)
    record["quick"] = evaluate_networks(nets, load_validation_set(val_file, count=min(QUICK_VAL, val_examples)))
    if train_code_val is not None:
        source, folder = train_code_val
        shifted = cache_batches(folder)
        record["train_code_val"] = {"source": source, "base": evaluate_networks(base_nets, shifted),
                                    "metrics": evaluate_networks(nets, shifted)}
    record["data_config"] = OmegaConf.to_container(cfg.data, resolve=True)
    nets.save_safetensors(out, extra={"trained_by": "facerefl.tasks.train_all --no-skip", "ablation": "no_skip"},
                          base=base)
    atomic_write_text(out / "metrics.json", json.dumps(record, indent=2) + "\n", make_parents=True)
    atomic_write_text(out / "MODEL_CARD.md", noskip_model_card(out.name, record), make_parents=True)
    return record


def stage_steps(stage: str, ae: int, enh: int, light: int, level: int | None = None) -> int:
    """Steps of ``stage`` (``<kind>_ae``, ``<kind>_ae_noskip``, ``<kind>_enh``, ``light`` or
    ``level``; ``level`` defaults to ``light``'s)."""
    if stage == "level":
        return light if level is None else level
    return ae if "_ae" in stage else enh if stage.endswith("_enh") else light


def _shown_argv(argv: list[str]) -> list[str]:
    """``argv`` for the model card: less ``--note TEXT`` (printed on its own) and ``--reuse``
    (which resumes a run without changing its result)."""
    out, skip = [], False
    for a in argv:
        if skip or a.startswith("--note=") or a == "--reuse":
            skip = False
            continue
        skip = a == "--note"
        if not skip:
            out.append(a)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m facerefl.tasks.train_all", description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="cpu", help="network sizes (conf/preset/<name>.yaml)")
    p.add_argument("--out", type=Path, default=None,
                   help="export folder (default data/checkpoints/<preset>, with --no-skip <preset>_noskip)")
    p.add_argument("--no-skip", action="store_true",
                   help="section 8.4.1 ablation: train only the autoencoders, without skip connections; "
                        "enhancers, light regressor and validation set from --base")
    p.add_argument("--base", type=Path, default=None,
                   help="with --no-skip: the full checkpoint to build on (default data/checkpoints/<preset>)")
    p.add_argument("--ae-steps", type=int, default=1000, help="steps per autoencoder")
    p.add_argument("--enh-steps", type=int, default=300, help="optimizer steps per detail enhancer")
    p.add_argument("--light-steps", type=int, default=800, help="steps of the light regressor")
    p.add_argument("--level-steps", type=int, default=None, help="steps of the albedo-level regressor "
                   "(default: --light-steps)")
    p.add_argument("--val-examples", type=int, default=FULL_VAL, help="held-out examples for the card")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1 suits a shared CPU)")
    p.add_argument("--stages", nargs="+", choices=STAGES, default=None, metavar="STAGE",
                   help="train only these stages, without assembling or exporting (run several "
                        "such processes on one --run-root, then once more with --reuse to export); "
                        f"an enhancer needs its autoencoder's export. Choices: {' '.join(STAGES)}")
    p.add_argument("--stages-from", type=Path, default=None, metavar="FOLDER",
                   help="first fill the run root's missing stage exports from this exported checkpoint "
                        "(e.g. data/checkpoints/cpu_x10), so that --reuse continues that run")
    p.add_argument("--reuse", action="store_true", help="keep stages already trained under --run-root; resume an interrupted "
                        "stage from its last checkpoint")
    p.add_argument("--note", default="", help="free text for the model card's data section")
    p.add_argument("--cache-examples", type=int, default=640,
                   help="build a training cache of this many examples under --run-root first and "
                        "train from it (0: use the data config as given, e.g. data.cache_dir=DIR)")
    p.add_argument("--cache-workers", type=int, default=2, help="generator processes for the cache")
    p.add_argument("--data-commit", default=None, metavar="REV",
                   help="build the cache with the data code of this git revision (the shipped cpu "
                        "cache: 729ddba) instead of the checked-out code")
    p.add_argument("--run-root", type=Path, default=REPO / "outputs" / "train_all", help="logs and stage exports")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides for every stage, e.g. data.cache_dir=DIR")
    args = p.parse_args(argv)
    name = f"{args.preset}_noskip" if args.no_skip else args.preset
    out = args.out or CHECKPOINTS_DIR / name
    stages = NOSKIP_STAGES if args.no_skip else STAGES
    steps = {s: stage_steps(s, args.ae_steps, args.enh_steps, args.light_steps, args.level_steps) for s in stages}
    command = "python -m facerefl.tasks.train_all " + " ".join(_shown_argv(sys.argv[1:] if argv is None else argv))
    torch.set_num_threads(args.threads)
    try:
        overrides, shift_val = list(args.overrides), None
        if args.cache_examples > 0 and not any(o.startswith("data.cache_dir=") for o in overrides):
            data_cfg = compose_stage(stages[0], args.run_root, [f"preset={args.preset}", *overrides]).data
            folder, code = args.run_root / args.preset / "cache", None
            if args.data_commit:
                full, code = data_code_snapshot(args.data_commit, args.run_root)
                folder = folder.with_name(f"cache-{full[:12]}")
            cache = ensure_cache(folder, args.cache_examples, data_cfg, args.cache_workers, code, args.threads)
            if args.no_skip and code is not None:
                # the first validation seeds as that data code made them (cf. the stored set)

                val = ensure_cache(folder.with_name(f"val-{full[:12]}"), int(data_cfg.num_val), data_cfg,
                                   args.cache_workers, code, args.threads, seed=VAL_SEED)
                shown = val.relative_to(REPO) if val.is_relative_to(REPO) else val
                shift_val = (f"commit {full[:7]}; cached in {shown}", val)
            overrides.append(f"data.cache_dir={cache}")
        elif args.data_commit:
            raise InputError("--data-commit builds the training cache: it needs --cache-examples > 0 "
                             "and no data.cache_dir= override")
        if (args.stages or args.stages_from) and args.no_skip:
            raise InputError("--stages and --stages-from concern the full networks; not with --no-skip")
        if args.stages_from is not None:
            seeded = seed_stages(args.stages_from, args.run_root / args.preset / "stages")
            print(f"[train_all] stages from {args.stages_from}: {' '.join(seeded) or 'none needed'}", flush=True)
        if args.no_skip:
            base = args.base or CHECKPOINTS_DIR / args.preset
            record = train_noskip(args.preset, out, base, steps, overrides, args.run_root / name, args.threads,
                                  args.reuse, args.note, args.val_examples, command, shift_val)
        else:
            record = train_all(args.preset, out, steps, overrides, args.run_root / args.preset, args.threads,
                               args.reuse, args.note, args.val_examples,
                               tuple(args.stages) if args.stages else None)
    except (InputError, AssetMissingError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(record["metrics"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
