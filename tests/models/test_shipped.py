"""The committed CPU weights (data/checkpoints/cpu, the scaled run cpu_x10, and cpu_x10_photo
adapted from it) load without unpickling and reproduce the validation numbers of their
model cards."""

import dataclasses
import json
from pathlib import Path

import pytest
from safetensors import safe_open

from facerefl.assets import sha256_file
from facerefl.models.evaluation import evaluate_networks
from facerefl.models.networks import ReflectanceNetworks, shipped_dir
from facerefl.models.presets import preset_sizes
from facerefl.tasks.train_all import QUICK_VAL, VAL_FILE, load_validation_set

FOLDER = shipped_dir("cpu")
RECORD = json.loads((FOLDER / "metrics.json").read_text())
NAMES = ("cpu", "cpu_x10")


def _record(name: str) -> dict:
    return json.loads((shipped_dir(name) / "metrics.json").read_text())


@pytest.mark.parametrize("name", NAMES)
def test_files_are_safetensors_and_small(name):
    folder = shipped_dir(name)
    files = sorted(folder.glob("*.safetensors"))
    level = ["level.safetensors"] if ReflectanceNetworks.load_shipped(name).level is not None else []
    assert [f.name for f in files] == ["albedo.safetensors", *level, "light.safetensors", "normal.safetensors",
                                       "specular.safetensors", VAL_FILE]
    for f in files:
        with safe_open(str(f), framework="pt") as st:
            assert len(list(st.keys())) > (4 if f.name == VAL_FILE else 10)
    assert sum(f.stat().st_size for f in folder.iterdir() if f.name != VAL_FILE) < 60e6
    assert (folder / "MODEL_CARD.md").read_text().count("PSNR") >= 2


@pytest.mark.parametrize("name", NAMES)
def test_shipped_architecture_is_the_cpu_preset(name):
    """The preset's sizes; the albedo-level regressor (which the preset names) is optional."""
    nets = ReflectanceNetworks.load_shipped(name)
    sizes = preset_sizes("cpu")
    assert nets.cfg == (sizes if nets.level is not None else sizes.without_level())


def _check(metrics, expected):
    keys = [k for k in expected if "psnr" in k]
    # 13 map and light PSNRs, and the specular map at its regressor's mean where the
    # checkpoint has one (session 9)
    assert len(keys) == 13 + ("specular/psnr_leveled" in expected)
    for k in keys:
        assert metrics[k] == pytest.approx(expected[k], abs=0.1), k
    # cards written since session 5 (albedo level) and session 9 (specular level)
    for k in [k for k in expected if k.startswith(("level/", "specular_level/"))]:
        assert metrics[k] == pytest.approx(expected[k], abs=0.005), k


@pytest.mark.parametrize("name", NAMES)
def test_quick_validation_numbers_reproduce(name):
    nets = ReflectanceNetworks.load_shipped(name)
    batches = load_validation_set(shipped_dir(name) / VAL_FILE, count=QUICK_VAL)
    _check(evaluate_networks(nets, batches), _record(name)["quick"])


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_full_validation_numbers_reproduce(name):
    nets = ReflectanceNetworks.load_shipped(name)
    batches = load_validation_set(shipped_dir(name) / VAL_FILE)
    _check(evaluate_networks(nets, batches), _record(name)["metrics"])


def test_enhancers_add_detail_over_the_decoder():
    # On held-out data, the enhanced maps match the ground truth's high-pass band better
    # than the (bilinearly upsampled) decoder output does.
    m = RECORD["metrics"]
    for k in ("albedo", "specular", "normal"):
        assert m[f"{k}/detail_psnr"] > m[f"{k}/detail_psnr_decoder"], k


# ---------------------------------------------------------------- adapted checkpoints
#: folders written by ``facerefl.tasks.adapt``: only changed tensors, the rest borrowed
ADAPTED = {"cpu_x10_photo": "cpu_x10"}


@pytest.mark.parametrize("name", ADAPTED)
def test_adapted_checkpoint_borrows_from_its_pinned_base(name):
    folder, base = shipped_dir(name), shipped_dir(ADAPTED[name])
    cfg = json.loads((folder / "config.json").read_text())
    assert (folder / cfg["base"]["folder"]).resolve() == base.resolve()
    for file, digest in cfg["base"]["sha256"].items():
        assert sha256_file(base / file) == digest, file
    own = sum(f.stat().st_size for f in folder.glob("*.safetensors"))
    theirs = sum(f.stat().st_size for f in base.glob("*.safetensors") if f.name != VAL_FILE)
    assert own < 0.7 * theirs  # the decoders and enhancers are the base's
    nets = ReflectanceNetworks.load_shipped(name)
    # the preset's sizes; adapt's output averages the regressors' mirrored answers and may
    # add a specular-level regressor (the level regressor's sizes)
    assert nets.cfg.mirror_average
    assert nets.cfg.specular_level in (None, nets.cfg.level)
    assert dataclasses.replace(nets.cfg, mirror_average=False, specular_level=None) == preset_sizes("cpu")
    card = (folder / "MODEL_CARD.md").read_text()
    assert "| albedo (decoder) |" in card and not any(p in card for p in ("/tmp/", "/work/", "/root/", "/home/"))


@pytest.mark.parametrize("name", ADAPTED)
def test_adapted_quick_validation_numbers_reproduce(name):
    nets = ReflectanceNetworks.load_shipped(name)
    batches = load_validation_set(shipped_dir(ADAPTED[name]) / VAL_FILE, count=QUICK_VAL)
    _check(evaluate_networks(nets, batches), _record(name)["quick"])


def test_a_wheel_ships_every_preset_checkpoint_and_its_base():
    """pyproject's data-files hold each preset's default checkpoint and the folder it
    borrows from (a wheel install of session 5 lacked the default cpu_x10)."""
    import tomllib

    from omegaconf import OmegaConf

    from facerefl.resources import CHECKPOINTS_DIR, CONF_DIR

    root = Path(__file__).resolve().parents[2]
    files = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    shipped = {k.rsplit("/", 1)[-1] for k in files if k.startswith("share/facerefl/checkpoints/")}
    for preset in sorted((CONF_DIR / "preset").glob("*.yaml")):
        name = OmegaConf.load(preset).get("checkpoint")
        if name is None or not (CHECKPOINTS_DIR / name).is_dir():  # the paper preset ships none
            continue
        need = {name}
        cfg = json.loads((CHECKPOINTS_DIR / name / "config.json").read_text())
        if "base" in cfg:
            need.add((CHECKPOINTS_DIR / name / cfg["base"]["folder"]).resolve().name)
        assert need <= shipped, (preset.name, need - shipped)
