import pytest
import torch
from hydra.utils import instantiate

from facerefl.errors import InputError
from facerefl.tasks.train import train
from tests.models.helpers import compose_train

EXPERIMENTS = ["albedo_ae", "specular_ae", "normal_ae", "albedo_ae_noskip",
               "albedo_enh", "specular_enh", "normal_enh", "light"]


def _enh_overrides(name):
    # The enhancers start from the shipped autoencoder of the preset; these smoke tests run
    # on an untrained one so they do not depend on data/checkpoints.
    return ["model.autoencoder_weights=null"] if name.endswith("_enh") else []


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_fast_dev_run(tmp_path, name):
    cfg = compose_train(tmp_path, [f"experiment={name}", "trainer.fast_dev_run=true"] + _enh_overrides(name))
    result = train(cfg)
    assert result.trainer.global_step >= 1
    assert "train/loss" in result.metrics and torch.isfinite(torch.tensor(result.metrics["train/loss"]))
    assert result.export_path.is_file()


@pytest.mark.parametrize("preset", ["cpu", "paper"])
def test_every_model_config_instantiates(tmp_path, preset):
    for name in EXPERIMENTS:
        cfg = compose_train(tmp_path, [f"experiment={name}", f"preset={preset}"] + _enh_overrides(name))
        model = instantiate(cfg.model)
        assert sum(p.numel() for p in model.parameters()) > 0


def test_autoencoder_training_reduces_loss_and_logs_val_psnr(tmp_path):
    cfg = compose_train(tmp_path, ["experiment=albedo_ae", "trainer.max_steps=16",
                                   "trainer.val_check_interval=8", "trainer.log_every_n_steps=1",
                                   "logger=csv"])
    result = train(cfg)
    assert "val/psnr" in result.metrics
    import csv
    rows = list(csv.DictReader(open(tmp_path / "run" / "csv" / "metrics.csv")))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert len(losses) >= 12
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4


def test_enhancer_missing_autoencoder_weights_is_a_user_error(tmp_path):
    cfg = compose_train(tmp_path, ["experiment=albedo_enh", f"model.autoencoder_weights={tmp_path}/none.safetensors"])
    with pytest.raises(InputError, match="train the autoencoder"):
        train(cfg)
