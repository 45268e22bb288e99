"""``make train``: train every network of a preset in order and ship the weights.

``python -m facerefl.tasks.train_all [--preset cpu] [--out data/checkpoints/cpu]``

Order (each stage is one :func:`facerefl.tasks.train.train` call on the composed
``conf/train.yaml`` with ``experiment=<stage>``):

1. the albedo, specular and normal autoencoders (E_*, D_*);
2. the three detail enhancers R_*, trained on the outputs of the decoders just trained
   (``model.autoencoder_weights`` points at stage 1's export, never at downsampled targets);
3. the SH light regressor.

The stage exports are assembled into a :class:`~facerefl.models.networks.ReflectanceNetworks`,
written as safetensors into ``--out`` with ``metrics.json`` and ``MODEL_CARD.md`` (data,
steps, wall time, validation metrics on held-out synthetic examples generated on the fly).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict
from safetensors.torch import load_file

from facerefl.assets import AssetMissingError
from facerefl.errors import InputError
from facerefl.models.components.heads import KINDS
from facerefl.models.evaluation import evaluate_networks
from facerefl.models.networks import NetworksConfig, ReflectanceNetworks
from facerefl.models.serialization import save_state_atomic, write_text_atomic
from facerefl.tasks.train import train

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"
STAGES = tuple(f"{k}_ae" for k in KINDS) + tuple(f"{k}_enh" for k in KINDS) + ("light",)
#: Validation set of the model card: the data module's first ``FULL_VAL`` validation seeds,
#: stored (float16) as ``VAL_FILE`` beside the weights; ``QUICK_VAL`` = the first few of them.
QUICK_VAL, FULL_VAL = 8, 64
VAL_FILE = "validation.safetensors"


def ensure_cache(folder: Path, count: int, data_cfg) -> Path:
    """Generate ``count`` training examples into ``folder`` once (one shard, so shuffled
    reads never reload shards), with the sizes of the composed data config."""
    if (folder / "manifest.json").is_file():
        return folder
    from facerefl.data import make_cache

    argv = ["--out", str(folder), "--n", str(count), "--seed", str(data_cfg.train_seed),
            "--image", str(data_cfg.image), "--texture", str(data_cfg.texture),
            "--detail", str(data_cfg.detail), "--shard-size", str(count), "--workers", "2"]
    if make_cache.main(argv) != 0:
        raise InputError(f"could not build the training cache in {folder} (see above)")
    return folder


def compose_stage(stage: str, run_root: Path, overrides: list[str]) -> OmegaConf:
    """Compose ``conf/train.yaml`` for one stage with outputs under ``run_root/stage``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose(config_name="train", return_hydra_config=True,
                      overrides=[f"experiment={stage}", *overrides])
    with open_dict(cfg):
        cfg.paths.root_dir = str(REPO)
        cfg.paths.output_dir = str(run_root / stage)
        cfg.hydra.runtime.output_dir = str(run_root / stage)
        cfg.hydra.job.num = 0
    HydraConfig().set_config(cfg)
    return cfg


def assemble(sizes: dict, stage_dir: Path) -> ReflectanceNetworks:
    """Build the networks from the stage exports (``<kind>_ae``, ``<kind>_enh``, ``light``)."""
    nets = ReflectanceNetworks(NetworksConfig.from_dict(sizes))
    for k in KINDS:
        state = {**load_file(str(stage_dir / f"{k}_ae.safetensors")),
                 **load_file(str(stage_dir / f"{k}_enh.safetensors"))}
        nets.branch(k).load_state_dict(state)
    nets.light.load_state_dict(load_file(str(stage_dir / "light.safetensors")))
    return nets


def validation_batches(data_cfg, count: int) -> list:
    """The first ``count`` validation examples of the configured data module (on the fly)."""
    from hydra.utils import instantiate

    dm = instantiate(data_cfg, num_val=count, val_cache_dir=None, cache_dir=None)
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
    from facerefl.data.types import ReflectanceBatch

    t = {k: v.float() for k, v in load_file(str(path)).items()}
    n = len(t["texture"]) if count is None else count
    return [ReflectanceBatch(**{k: v[i:min(i + batch_size, n)] for k, v in t.items()})
            for i in range(0, n, batch_size)]


def model_card(preset: str, record: dict) -> str:
    """Markdown model card from the run record (stages, data, metrics)."""
    m = record["metrics"]
    lines = [
        f"# facerefl networks, `{preset}` preset",
        "",
        "Encoders/decoders, SRGAN detail enhancers and the SH light regressor of",
        "\"Single-view facial reflectance inference with a differentiable renderer\" (Geng et al.",
        "2021), trained by `python -m facerefl.tasks.train_all` on synthetic data only.",
        "Load with `ReflectanceNetworks.load_shipped(\"%s\")` (safetensors; never unpickled)." % preset,
        "",
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
    ]
    for s in record["stages"]:
        psnr = s["metrics"].get("val/psnr")
        lines.append(f"| {s['stage']} | {s['steps']} | {s['batch_size']} | {s['wall_s']:.0f} | "
                     f"{'' if psnr is None else f'{psnr:.2f}'} |")
    lines += [
        "",
        "Optimizer steps are Lightning's `global_step`: for the enhancers (manual GAN",
        "optimization) the generator and the discriminator steps both count, and only the",
        "generator steps during the warm-up (`adversarial_start_step` batches), so an enhancer",
        "saw `warm-up + (steps - warm-up) / 2` batches. An empty PSNR cell means the stage ended",
        "before its first validation; the table below evaluates every network afterwards.",
        "",
        f"Total training wall time {record['total_wall_s']:.0f} s (sum of the stages) on {record['machine']}.",
        "",
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
    lines += ["", f"| light | | {m['light/psnr']:.2f} | | | | |", "",
              "`metrics.json` holds these numbers (and `quick`, the same metrics on the first "
              f"{QUICK_VAL} examples, which the test suite re-checks).", ""]
    return "\n".join(lines)


def train_all(preset: str, out: Path, steps: dict[str, int], overrides: list[str], run_root: Path,
              threads: int = 1, reuse: bool = False, note: str = "", val_examples: int = FULL_VAL) -> dict:
    """Run every stage, assemble, evaluate and export; returns the run record.

    With ``reuse``, a stage whose export and record (``stages/<stage>.json``) exist under
    ``run_root`` is not trained again (e.g. after retuning one later stage).
    """
    stage_dir = run_root / "stages"
    common = [f"preset={preset}", "logger=csv", f"torch_threads={threads}", *overrides]
    torch.set_num_threads(threads)
    record = {"preset": preset, "stages": [], "note": note,
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, {threads} torch thread(s)"}
    cfg = None
    for stage in STAGES:
        extra = [f"export_path={stage_dir / stage}.safetensors", f"trainer.max_steps={steps[stage]}",
                 f"trainer.val_check_interval={min(steps[stage], 500)}"]
        if stage.endswith("_enh"):
            extra.append(f"model.autoencoder_weights={stage_dir / stage.replace('_enh', '_ae')}.safetensors")
        cfg = compose_stage(stage, run_root, common + extra)
        done = stage_dir / f"{stage}.json"
        if reuse and done.is_file() and (stage_dir / f"{stage}.safetensors").is_file():
            record["stages"].append(json.loads(done.read_text(encoding="utf-8")))
            print(f"[train_all] {stage}: reusing {stage_dir / stage}.safetensors", flush=True)
            continue
        print(f"[train_all] {stage}: {steps[stage]} steps", flush=True)
        t0 = time.perf_counter()
        result = train(cfg)
        wall = time.perf_counter() - t0
        record["stages"].append({"stage": stage, "steps": int(result.trainer.global_step),
                                 "batch_size": int(cfg.data.batch_size), "wall_s": wall,
                                 "metrics": result.metrics})
        print(f"[train_all] {stage}: {wall:.0f} s, val/psnr {result.metrics.get('val/psnr')}", flush=True)
        write_text_atomic(stage_dir / f"{stage}.json", json.dumps(record["stages"][-1], indent=2) + "\n")
    record["total_wall_s"] = sum(st["wall_s"] for st in record["stages"])
    sizes = OmegaConf.to_container(cfg.sizes, resolve=True)
    nets = assemble(sizes, stage_dir)
    data_cfg = cfg.data
    record["data"] = {
        "train": (f"{OmegaConf.select(cfg, 'data.cache_dir') or 'on-the-fly'} "
                  f"({data_cfg._target_}, texture {data_cfg.texture}², detail {data_cfg.detail}²)"),
        "val": (f"first {val_examples} validation seeds of {data_cfg._target_} (seeds disjoint from "
                f"training), stored as {VAL_FILE} (float16)"),
    }
    save_validation_set(validation_batches(data_cfg, val_examples), out / VAL_FILE)
    record["metrics"] = evaluate_networks(nets, load_validation_set(out / VAL_FILE))
    record["quick"] = evaluate_networks(nets, load_validation_set(out / VAL_FILE, count=min(QUICK_VAL, val_examples)))
    record["data_config"] = OmegaConf.to_container(data_cfg, resolve=True)
    nets.save_safetensors(out, extra={"trained_by": "facerefl.tasks.train_all"})
    write_text_atomic(out / "metrics.json", json.dumps(record, indent=2) + "\n")
    write_text_atomic(out / "MODEL_CARD.md", model_card(preset, record))
    return record


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m facerefl.tasks.train_all", description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="cpu", help="network sizes (conf/preset/<name>.yaml)")
    p.add_argument("--out", type=Path, default=None, help="export folder (default data/checkpoints/<preset>)")
    p.add_argument("--ae-steps", type=int, default=1000, help="steps per autoencoder")
    p.add_argument("--enh-steps", type=int, default=300, help="optimizer steps per detail enhancer")
    p.add_argument("--light-steps", type=int, default=800, help="steps of the light regressor")
    p.add_argument("--val-examples", type=int, default=FULL_VAL, help="held-out examples for the card")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1 suits a shared CPU)")
    p.add_argument("--reuse", action="store_true", help="keep stages already trained under --run-root")
    p.add_argument("--note", default="", help="free text for the model card's data section")
    p.add_argument("--cache-examples", type=int, default=640,
                   help="build a training cache of this many examples under --run-root first and "
                        "train from it (0: use the data config as given, e.g. data.cache_dir=DIR)")
    p.add_argument("--run-root", type=Path, default=REPO / "outputs" / "train_all", help="logs and stage exports")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides for every stage, e.g. data.cache_dir=DIR")
    args = p.parse_args(argv)
    out = args.out or REPO / "data" / "checkpoints" / args.preset
    steps = {s: args.ae_steps if s.endswith("_ae") else args.enh_steps if s.endswith("_enh") else args.light_steps
             for s in STAGES}
    try:
        overrides = list(args.overrides)
        if args.cache_examples > 0 and not any(o.startswith("data.cache_dir=") for o in overrides):
            data_cfg = compose_stage(STAGES[0], args.run_root, [f"preset={args.preset}", *overrides]).data
            cache = ensure_cache(args.run_root / args.preset / "cache", args.cache_examples, data_cfg)
            overrides.append(f"data.cache_dir={cache}")
        record = train_all(args.preset, out, steps, overrides, args.run_root / args.preset, args.threads,
                           args.reuse, args.note, args.val_examples)
    except (InputError, AssetMissingError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(record["metrics"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
