"""The committed CPU weights (data/checkpoints/cpu) load without unpickling and reproduce
the validation numbers of their model card."""

import json

import pytest
from safetensors import safe_open

from facerefl.models.evaluation import evaluate_networks
from facerefl.models.networks import ReflectanceNetworks, shipped_dir
from facerefl.models.presets import preset_sizes
from facerefl.tasks.train_all import QUICK_VAL, VAL_FILE, load_validation_set

FOLDER = shipped_dir("cpu")
RECORD = json.loads((FOLDER / "metrics.json").read_text())


def test_files_are_safetensors_and_small():
    files = sorted(FOLDER.glob("*.safetensors"))
    assert [f.name for f in files] == ["albedo.safetensors", "light.safetensors", "normal.safetensors",
                                       "specular.safetensors", VAL_FILE]
    for f in files:
        with safe_open(str(f), framework="pt") as st:
            assert len(list(st.keys())) > (4 if f.name == VAL_FILE else 10)
    assert sum(f.stat().st_size for f in FOLDER.iterdir() if f.name != VAL_FILE) < 60e6
    assert (FOLDER / "MODEL_CARD.md").read_text().count("PSNR") >= 2


def test_shipped_architecture_is_the_cpu_preset():
    nets = ReflectanceNetworks.load_shipped("cpu")
    assert nets.cfg == preset_sizes("cpu")


def _check(metrics, expected):
    keys = [k for k in expected if "psnr" in k]
    assert len(keys) == 13
    for k in keys:
        assert metrics[k] == pytest.approx(expected[k], abs=0.1), k


def test_quick_validation_numbers_reproduce():
    nets = ReflectanceNetworks.load_shipped("cpu")
    batches = load_validation_set(FOLDER / VAL_FILE, count=QUICK_VAL)
    _check(evaluate_networks(nets, batches), RECORD["quick"])


@pytest.mark.slow
def test_full_validation_numbers_reproduce():
    nets = ReflectanceNetworks.load_shipped("cpu")
    batches = load_validation_set(FOLDER / VAL_FILE)
    _check(evaluate_networks(nets, batches), RECORD["metrics"])


def test_enhancers_add_detail_over_the_decoder():
    # On held-out data, the enhanced maps match the ground truth's high-pass band better
    # than the (bilinearly upsampled) decoder output does.
    m = RECORD["metrics"]
    for k in ("albedo", "specular", "normal"):
        assert m[f"{k}/detail_psnr"] > m[f"{k}/detail_psnr_decoder"], k
