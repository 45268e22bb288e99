"""``python -m facerefl.tasks.adapt``: adapt shipped networks to the texture the fit sees.

The networks of ``train_all`` learn from T unwrapped with each synthetic scene's own mesh.
A photo's T is unwrapped with the geometry stage's fit instead: misaligned features,
background at the borders, another visibility mask. This task fine-tunes, on a cache made
with ``make_cache --unwrap photo``:

1. the three encoders (``experiment=<kind>_ae model.freeze_decoder=true``): the decoders
   are kept;
2. the albedo-level regressor and the SH light regressor;
3. optionally (``--stages``), the albedo and specular detail enhancers, on the decoded maps
   of their adapted encoders (the specular one also reads T);

each started from the base checkpoint's weights (``init_weights=``). By default the result
answers with its light and level regressors mirror-averaged (``mirror_average`` in
:class:`~facerefl.models.networks.NetworksConfig`). The result is written
as a checkpoint folder that borrows every unchanged tensor from the base (``base`` in its
``config.json``), with ``metrics.json`` and ``MODEL_CARD.md``: validation of the base and of
the adapted networks on held-out photo-unwrapped examples and on the base's own stored
validation set. With ``--reuse`` finished stages are kept and an interrupted one resumes
from its last checkpoint, so the run can span sessions.

What it changes, and the commands that made ``data/checkpoints/cpu_x10_photo``:
``docs/photo_unwrap.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from facerefl.data.cache import cache_count, read_manifest
from facerefl.errors import InputError
from facerefl.fsutil import atomic_write_text
from facerefl.models.evaluation import evaluate_networks
from facerefl.models.components.level import AlbedoLevelRegressor
from facerefl.models.networks import LightConfig, ReflectanceNetworks
from facerefl.tasks.train_all import (QUICK_VAL, VAL_FILE, _shown_path, cache_batches, load_validation_set,
                                      run_stages)

#: Stages in order, with their own overrides (the base file each starts from is added).
STAGES: dict[str, list[str]] = {
    "albedo_ae": ["model.freeze_decoder=true", "model.optimizer.lr=3e-4"],
    "specular_ae": ["model.freeze_decoder=true", "model.optimizer.lr=3e-4"],
    "normal_ae": ["model.freeze_decoder=true", "model.optimizer.lr=3e-4"],
    "level": ["data.batch_size=32", "model.optimizer.lr=5e-4"],
    "light": ["model.optimizer.lr=3e-4"],
    # a network the base may lack: then it starts from scratch
    "specular_level": [],
    # an enhancer learns from its (adapted) autoencoder's decoded maps: run_stages points
    # model.autoencoder_weights at that stage's export
    # (the specular one on the pixel loss alone: with its adversarial term it validated lower,
    # docs/photo_unwrap.md)
    "albedo_enh": ["model.optimizer_g.lr=1e-4"],
    "specular_enh": ["model.optimizer_g.lr=1e-4", "model.adversarial_weight=0"],
}
#: The base checkpoint file each stage starts from, and which module its export replaces.
SOURCES = {"albedo_ae": "albedo", "specular_ae": "specular", "normal_ae": "normal",
           "level": "level", "light": "light", "albedo_enh": "albedo", "specular_enh": "specular",
           "specular_level": "specular_level"}
#: Stages whose network the base may lack (trained from scratch, added to the result).
NEW_NETWORKS = ("specular_level",)
#: How the card names each stage's network.
STAGE_NAMES = {"albedo_ae": "the albedo encoder", "specular_ae": "the specular encoder",
               "normal_ae": "the normal encoder", "level": "the albedo-level regressor",
               "light": "the SH light regressor", "albedo_enh": "the albedo detail enhancer",
               "specular_enh": "the specular detail enhancer",
               "specular_level": "the specular-level regressor"}
#: Metrics the card shows: key of evaluate_networks, label.
CARD_METRICS = (("albedo/psnr", "albedo (enhanced)"), ("albedo/psnr_decoder", "albedo (decoder)"),
                ("specular/psnr", "specular"), ("normal/psnr", "normal"), ("light/psnr", "light"),
                ("level/rms_log", "level, RMS log error"),
                ("specular/psnr_leveled", "specular, at the specular-level regressor's mean"),
                ("specular_level/encoders_rms_log", "specular level of the encoders, RMS log error"),
                ("specular_level/rms_log", "specular-level regressor, RMS log error"))


def compose_networks(base: Path, stage_dir: Path, stages: list[str]) -> ReflectanceNetworks:
    """The base networks with each of ``stages``' exports (``stage_dir/<stage>.safetensors``)
    in place of the module it adapted: an encoder stage (``<kind>_ae``) replaces the whole
    autoencoder, whose decoder it left unchanged; an enhancer stage (``<kind>_enh``) the
    enhancer."""
    nets = ReflectanceNetworks.from_safetensors(base)
    for stage in stages:
        state = load_file(str(stage_dir / f"{stage}.safetensors"))
        part = SOURCES[stage]
        if part in ("albedo", "specular", "normal"):
            prefix = "enhancer." if stage.endswith("_enh") else "autoencoder."
            getattr(nets.branch(part), prefix[:-1]).load_state_dict(
                {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
        elif getattr(nets, part) is None and part in NEW_NETWORKS:
            _add_specular_level(nets, state)
        elif getattr(nets, part) is None:
            raise InputError(f"the base {base} has no {part} network to adapt")
        else:
            getattr(nets, part).load_state_dict(state)
    return nets


def _add_specular_level(nets: ReflectanceNetworks, state: dict) -> None:
    """Give ``nets`` a specular-level regressor holding ``state`` (its width read from the
    first convolution; its input side the level regressor's, or else the light's)."""
    width = int(state["features.0.weight"].shape[0])
    size = (nets.cfg.level or nets.cfg.light).input_size
    nets.cfg = dataclasses.replace(nets.cfg, specular_level=LightConfig(size, width))
    nets.specular_level = AlbedoLevelRegressor(size, width, channels=1)
    nets.specular_level.load_state_dict(state)


def _count(batches: list) -> int:
    return sum(b.batch_size for b in batches)


def _validate(nets: ReflectanceNetworks, sets: dict[str, list]) -> dict[str, dict[str, float]]:
    return {name: evaluate_networks(nets, batches) for name, batches in sets.items()}


def adapt_card(name: str, record: dict) -> str:
    """MODEL_CARD.md of an adapted checkpoint from its ``metrics.json`` record."""
    v = record["validation"]
    lines = [
        f"# Model card: `{name}`",
        "",
        f"`{record['base']}` with these networks fine-tuned on textures unwrapped by the geometry",
        "stage from the rendered photos (`make_cache --unwrap photo`), as the fit of a user's",
        "photo unwraps them: " + ", ".join(STAGE_NAMES[s["stage"]] for s in record["stages"]) + ".",
        "The decoders and every other network are the base's: this folder stores only the changed",
        "tensors and borrows the rest from the base (`base` in `config.json`, pinned by sha256).",
        "",
        f"Load: `ReflectanceNetworks.load_shipped(\"{name}\")`, or `checkpoint={name}` in the",
        "entry points.",
        "",
        "## Training",
        "",
        f"- data: {record['data']['train']}",
        f"- validation: {record['data']['val']}",
        f"- command: `{record['command']}`",
        "",
        "| stage | starts from | optimizer steps | batch | wall time (s) |",
        "|---|---|---|---|---|",
    ]
    for s in record["stages"]:
        start = "scratch" if s["stage"] in NEW_NETWORKS else f"base `{SOURCES[s['stage']]}.safetensors`"
        lines.append(f"| {s['stage']} | {start} | {s['steps']} | "
                     f"{s['batch_size']} | {s['wall_s']:.0f} |")
    lines += ["", f"Total: {sum(s['wall_s'] for s in record['stages']) / 60:.1f} CPU-minutes on "
              f"{record['machine']}.", ""]
    if record.get("mirror_average"):
        lines += ["The adapted networks run the light and level regressors on T and on T flipped along u",
                  "and average the answers (`mirror_average` in `config.json`); the base does not.", ""]
    lines += ["## Validation", ""]
    for set_name, label in (("photo", "held-out photo-unwrapped examples (what the fit sees)"),
                            ("truth", "the base's stored validation set (T from each scene's own mesh)")):
        n = int(v["adapted"][set_name]["num_examples"])
        lines += [f"On {n} {label}; PSNR in dB:", "", "| metric | base | adapted |", "|---|---|---|"]
        for key, text in CARD_METRICS:
            b, a = v["base"][set_name].get(key), v["adapted"][set_name].get(key)
            if a is None:
                continue
            d = 3 if "rms" in key else 2
            lines.append(f"| {text} | {'—' if b is None else f'{b:.{d}f}'} | {a:.{d}f} |")
        lines.append("")
    lines += ["The adapted networks are worse on the second set: there the textures are aligned with",
              "the maps, which a photo's never are. Table 1, consistency and photo numbers of the",
              "default pipeline with these networks: `docs/photo_unwrap.md`.", ""]
    if record.get("note"):
        lines += ["## Note", "", record["note"], ""]
    return "\n".join(lines)


def adapt(base: Path, caches: list[Path], val: Path, out: Path, run_root: Path, steps: dict[str, int],
          threads: int = 1, reuse: bool = False, note: str = "", val_examples: int = 256,
          command: str = "", mirror_average: bool = True) -> dict:
    """Run the stages named in ``steps`` (in :data:`STAGES` order), compose, validate, write
    ``out``; returns the metrics record."""
    base = Path(base)
    stages = [s for s in STAGES if s in steps]
    unknown = sorted(set(steps) - set(STAGES))
    if unknown:
        raise InputError(f"unknown stage {unknown[0]}; choose from {', '.join(STAGES)}")
    for stage in stages:
        if stage.endswith("_enh") and stage.replace("_enh", "_ae") not in stages:
            raise InputError(f"{stage} learns from its adapted encoder: add {stage.replace('_enh', '_ae')}")
    for folder in [*caches, val]:
        read_manifest(folder)  # a missing cache fails before any training
    for stage in stages:
        if stage not in NEW_NETWORKS and not (base / f"{SOURCES[stage]}.safetensors").is_file():
            raise InputError(f"{base} has no {SOURCES[stage]}.safetensors to start {stage} from")
    cache_arg = "[" + ",".join(str(c) for c in caches) + "]"
    common = [f"data.cache_dir={cache_arg}", f"data.val_cache_dir={val}", f"torch_threads={threads}"]
    per_stage = {s: [*STAGES[s], *([f"init_weights={base / SOURCES[s]}.safetensors"]
                                  if (base / f"{SOURCES[s]}.safetensors").is_file() else [])]
                 for s in stages}
    record: dict = {"stages": []}
    run_stages(tuple(stages), steps, common, run_root, reuse, record, per_stage)
    nets = compose_networks(base, run_root / "stages", stages)
    nets.cfg = dataclasses.replace(nets.cfg, mirror_average=mirror_average)
    sets = {"photo": cache_batches(val, count=val_examples),
            "truth": load_validation_set(base / VAL_FILE, count=val_examples)}
    validation = {"base": _validate(ReflectanceNetworks.from_safetensors(base), sets),
                  "adapted": _validate(nets, sets)}
    rel_base = _shown_path(str(base))
    record.update({
        "base": rel_base,
        "data": {"train": f"{cache_count(caches)} examples in "
                          + " + ".join(_shown_path(str(c)) for c in caches) + " (make_cache --unwrap photo)",
                 "val": f"the first {_count(sets['photo'])} examples of {_shown_path(str(val))}; "
                        f"the first {_count(sets['truth'])} of {VAL_FILE} of the base"},
        "validation": validation,
        # what the test suite re-checks: the base's first QUICK_VAL stored examples
        "quick": evaluate_networks(nets, load_validation_set(base / VAL_FILE, count=QUICK_VAL)),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        "command": command,
        "mirror_average": mirror_average,
        "note": note,
    })
    nets.save_safetensors(out, extra={"trained_by": "facerefl.tasks.adapt"}, base=base)
    atomic_write_text(out / "metrics.json", json.dumps(record, indent=2) + "\n")
    atomic_write_text(out / "MODEL_CARD.md", adapt_card(out.name, record))
    return record


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m facerefl.tasks.adapt", description=__doc__.split("\n\n")[0])
    p.add_argument("--base", type=Path, default=Path("data/checkpoints/cpu_x10"), help="checkpoint to adapt")
    p.add_argument("--cache", type=Path, nargs="+", required=True,
                   help="training cache folder(s) made with make_cache --unwrap photo")
    p.add_argument("--val", type=Path, required=True, help="held-out cache made the same way")
    p.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    p.add_argument("--run-root", type=Path, default=Path("outputs/adapt"), help="stage runs and exports")
    p.add_argument("--encoder-steps", type=int, default=3000)
    p.add_argument("--level-steps", type=int, default=8000)
    p.add_argument("--light-steps", type=int, default=24000)
    p.add_argument("--specular-level-steps", type=int, default=3000)
    p.add_argument("--enhancer-steps", type=int, default=1500,
                   help="optimizer steps of an enhancer stage (generator and discriminator steps both count)")
    p.add_argument("--stages", nargs="+", default=list(STAGES), choices=list(STAGES),
                   help="stages to adapt (an enhancer needs its encoder stage)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reuse", action="store_true", help="keep finished stages, resume an interrupted one")
    p.add_argument("--val-examples", type=int, default=256)
    p.add_argument("--mirror-average", action=argparse.BooleanOptionalAction, default=True,
                   help="average the light and level regressors' answers for T and its mirror image")
    p.add_argument("--note", default="")
    args = p.parse_args(argv)
    # by stage name, else by its suffix (albedo_ae → ae)
    per_kind = {"ae": args.encoder_steps, "enh": args.enhancer_steps, "level": args.level_steps,
                "light": args.light_steps, "specular_level": args.specular_level_steps}
    steps = {s: per_kind[s] if s in per_kind else per_kind[s.rsplit("_", 1)[-1]] for s in args.stages}
    # the card's command shows the path arguments as _shown_path does (no machine path)
    paths = {str(a) for a in (args.base, args.val, args.out, args.run_root, *args.cache)}
    command = "python -m facerefl.tasks.adapt " + " ".join(
        shlex.quote(_shown_path(a) if a in paths else a) for a in (argv if argv is not None else sys.argv[1:]))
    t0 = time.perf_counter()
    try:
        adapt(args.base, args.cache, args.val, args.out, args.run_root, steps, args.threads, args.reuse,
              args.note, args.val_examples, command=command, mirror_average=args.mirror_average)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"[adapt] wrote {args.out} in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
