"""The committed no-skip ablation weights (data/checkpoints/cpu_noskip, section 8.4.1): they
load through cpu's files, their decoders ignore the skip features, and they reproduce the
validation numbers of their model card."""

import json
from dataclasses import replace

import pytest
import torch

from facerefl.models.components.heads import KINDS
from facerefl.models.evaluation import evaluate_networks
from facerefl.models.networks import ReflectanceNetworks, shipped_dir
from facerefl.models.presets import preset_sizes
from facerefl.tasks.train_all import QUICK_VAL, VAL_FILE, load_validation_set

FOLDER = shipped_dir("cpu_noskip")
RECORD = json.loads((FOLDER / "metrics.json").read_text())


@pytest.fixture(scope="module")
def nets():
    return ReflectanceNetworks.load_shipped("cpu_noskip").freeze()


@pytest.fixture(scope="module")
def cpu():
    return ReflectanceNetworks.load_shipped("cpu").freeze()


def test_folder_is_small_and_borrows_from_cpu():
    names = sorted(p.name for p in FOLDER.iterdir())
    assert names == ["MODEL_CARD.md", "albedo.safetensors", "config.json", "metrics.json",
                     "normal.safetensors", "specular.safetensors"]
    assert sum(p.stat().st_size for p in FOLDER.iterdir()) < 13e6
    cfg = json.loads((FOLDER / "config.json").read_text())
    assert cfg["base"]["folder"] == "../cpu"
    assert RECORD["data"]["val"].endswith(f"../cpu/{VAL_FILE}, not copied here)")
    card = (FOLDER / "MODEL_CARD.md").read_text()
    assert "ReflectanceNetworks.load_shipped(\"cpu_noskip\")" in card and "CPU-minutes" in card


def test_architecture_is_cpu_without_skips(nets):
    cpu_sizes = preset_sizes("cpu").without_level()  # built on `cpu`, which has no level regressor
    assert nets.cfg == replace(cpu_sizes, **{k: replace(cpu_sizes.branch(k), use_skips=False) for k in KINDS})
    assert all(not nets.branch(k).autoencoder.decoder.use_skips for k in KINDS)


def test_enhancers_and_light_are_cpus_and_autoencoders_are_new(nets, cpu):
    for k in KINDS:
        ours, theirs = nets.branch(k).enhancer.state_dict(), cpu.branch(k).enhancer.state_dict()
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[n], theirs[n]) for n in ours)
        enc, cpu_enc = nets.branch(k).autoencoder.encoder, cpu.branch(k).autoencoder.encoder
        assert not torch.equal(enc.to_latent.weight, cpu_enc.to_latent.weight)
    assert all(torch.equal(a, b) for a, b in zip(nets.light.state_dict().values(), cpu.light.state_dict().values()))


@pytest.mark.parametrize("kind", KINDS)
def test_decoder_output_does_not_depend_on_the_skips(nets, cpu, kind):
    texture = load_validation_set(shipped_dir("cpu") / VAL_FILE, count=2)[0].texture
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for model, ignores in ((nets, True), (cpu, False)):
            code = model.branch(kind).encode(texture)
            ref = model.branch(kind).decode(code)
            zeroed = replace(code, skips=tuple(torch.zeros_like(f) for f in code.skips))
            noise = replace(code, skips=tuple(torch.randn(f.shape, generator=gen) for f in code.skips))
            for other in (zeroed, noise):
                out = model.branch(kind).decode(other)
                # the full model's decoder, which does use them, is the check that this can fail
                assert torch.equal(out, ref) is ignores, (kind, ignores)


def test_quick_validation_numbers_reproduce(nets):
    batches = load_validation_set(shipped_dir("cpu") / VAL_FILE, count=QUICK_VAL)
    got, expected = evaluate_networks(nets, batches), RECORD["quick"]
    keys = [k for k in expected if "psnr" in k]
    assert len(keys) == 13
    for k in keys:
        assert got[k] == pytest.approx(expected[k], abs=0.1), k


def test_card_compares_with_cpu_on_the_same_examples():
    cpu_record = json.loads((shipped_dir("cpu") / "metrics.json").read_text())
    assert RECORD["base"]["metrics"] == cpu_record["metrics"]
    assert RECORD["metrics"]["num_examples"] == cpu_record["metrics"]["num_examples"] == 64
    assert [s["stage"] for s in RECORD["stages"]] == [f"{k}_ae_noskip" for k in KINDS]
    ae_steps = {s["stage"]: (s["steps"], s["batch_size"]) for s in cpu_record["stages"]}
    for s in RECORD["stages"]:  # the same optimizer steps and batch as cpu's autoencoders
        assert (s["steps"], s["batch_size"]) == ae_steps[s["stage"].replace("_noskip", "")]
    assert RECORD["data_config"]["batch_size"] == cpu_record["data_config"]["batch_size"]


def test_evaluate_no_skip_ablation_loads_these_weights():
    from hydra import compose, initialize_config_dir

    from facerefl.tasks.evaluate import load_eval_networks

    with initialize_config_dir(version_base="1.3", config_dir=str(shipped_dir("cpu").parents[2] / "conf")):
        cfg = compose(config_name="evaluate", overrides=["ablation=no_skip"])
    loaded = load_eval_networks(cfg)
    assert not loaded.cfg.normal.use_skips and not loaded.training
