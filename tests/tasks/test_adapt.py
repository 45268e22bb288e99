"""``facerefl.tasks.adapt``: the composed checkpoint, its borrowing, validation and card (stages
faked with known changes), user errors, and a tiny real run (slow)."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from facerefl.data.assemble import GeneratorSettings, Sizes
from facerefl.data.cache import write_cache
from facerefl.models.components.level import AlbedoLevelRegressor
from facerefl.models.networks import ReflectanceNetworks, shipped_dir
from facerefl.tasks import adapt

BASE = shipped_dir("cpu_x10")
# the sizes of the cpu preset's cache (cpu_x10's networks read 128-texel T and detail maps)
CPU_SIZES = GeneratorSettings(sizes=Sizes(image=256, texture=128, detail=128), bake_dirs=16)


def _stage_state(nets: ReflectanceNetworks, stage: str) -> dict[str, torch.Tensor]:
    """What the stage's export holds, as ``train.py`` writes it."""
    part = adapt.SOURCES[stage]
    if stage.endswith("_enh"):
        return {f"enhancer.{k}": v.clone() for k, v in nets.branch(part).enhancer.state_dict().items()}
    if part in ("albedo", "specular", "normal"):
        return {f"autoencoder.{k}": v.clone() for k, v in nets.branch(part).autoencoder.state_dict().items()}
    return {k: v.clone() for k, v in getattr(nets, part).state_dict().items()}


def test_adapt_writes_a_borrowing_checkpoint_with_validation_and_card(tmp_path, monkeypatch):
    base_nets = ReflectanceNetworks.from_safetensors(BASE)
    changed, calls = {}, {}

    def fake_run_stages(stages, steps, common, run_root, reuse, record, per_stage):
        stage_dir = run_root / "stages"
        stage_dir.mkdir(parents=True)
        for stage in stages:
            state = _stage_state(base_nets, stage)
            key = next(k for k, v in state.items() if v.is_floating_point()
                       and (not stage.endswith("_ae") or k.startswith("autoencoder.encoder.")))
            state[key] = state[key] + 0.01
            changed[stage] = key
            save_file(state, str(stage_dir / f"{stage}.safetensors"))
            record["stages"].append({"stage": stage, "steps": steps[stage], "batch_size": 8, "wall_s": 2.0,
                                     "metrics": {}})
        calls.update(common=common, per_stage=per_stage, steps=steps)

    monkeypatch.setattr(adapt, "run_stages", fake_run_stages)
    cache, val, out = tmp_path / "cache", tmp_path / "val", tmp_path / "adapted"
    write_cache(cache, CPU_SIZES, [1], shard_size=1)
    write_cache(val, CPU_SIZES, [2, 3, 4], shard_size=2)
    rc = adapt.main(["--base", str(BASE), "--cache", str(cache), "--val", str(val), "--out", str(out),
                     "--run-root", str(tmp_path / "runs"), "--encoder-steps", "7", "--val-examples", "2",
                     "--stages", "albedo_ae", "specular_ae", "normal_ae", "level", "light", "albedo_enh",
                     "--note", "see docs/a.md"])
    assert rc == 0
    # each stage starts from its base file; encoders keep their decoders
    assert calls["steps"] == {"albedo_ae": 7, "specular_ae": 7, "normal_ae": 7, "level": 8000, "light": 24000,
                              "albedo_enh": 1500}
    assert f"data.cache_dir=[{cache}]" in calls["common"]
    for stage in calls["steps"]:
        assert f"init_weights={BASE / adapt.SOURCES[stage]}.safetensors" in calls["per_stage"][stage]
        assert ("model.freeze_decoder=true" in calls["per_stage"][stage]) == stage.endswith("_ae")

    # the folder holds only the changed tensors and loads as base + changes
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["mirror_average"] is True  # the default
    assert set(cfg["base"]["sha256"]) == {"albedo.safetensors", "specular.safetensors", "normal.safetensors",
                                          "light.safetensors", "level.safetensors"}
    assert load_file(str(out / "albedo.safetensors")).keys() == {changed["albedo_ae"], changed["albedo_enh"]}
    assert load_file(str(out / "level.safetensors")).keys() == {changed["level"]}
    got, ref = ReflectanceNetworks.from_safetensors(out), base_nets
    for name, state in got._weight_states().items():
        theirs = ref._weight_states()[name]
        differ = {k for k in state if not torch.equal(state[k], theirs[k])}
        assert len(differ) == (2 if name == "albedo.safetensors" else 1), (name, differ)

    record = json.loads((out / "metrics.json").read_text())
    v = record["validation"]
    for who in ("base", "adapted"):
        assert v[who]["photo"]["num_examples"] == 2 and v[who]["truth"]["num_examples"] == 2
    assert v["adapted"]["photo"]["albedo/psnr"] != v["base"]["photo"]["albedo/psnr"]
    assert record["quick"]["num_examples"] == 8  # the shipped-weights test re-checks these
    card = (out / "MODEL_CARD.md").read_text()
    assert "| albedo (decoder) |" in card and "| level, RMS log error |" in card
    assert "the albedo detail enhancer" in card and "the specular detail enhancer" not in card
    assert "`mirror_average`" in card
    assert "--note 'see docs/a.md'`" in card  # the command as a shell would take it
    assert str(tmp_path) not in card and "3 examples" not in card and "1 examples in" in card


def test_a_specular_level_stage_adds_a_network_the_base_lacks(tmp_path, monkeypatch):
    torch.manual_seed(0)
    fresh = AlbedoLevelRegressor(64, 16, channels=1).state_dict()
    seen = {}

    def fake_run_stages(stages, steps, common, run_root, reuse, record, per_stage):
        (run_root / "stages").mkdir(parents=True)
        save_file({k: v.clone() for k, v in fresh.items()}, str(run_root / "stages" / "specular_level.safetensors"))
        record["stages"].append({"stage": "specular_level", "steps": steps["specular_level"], "batch_size": 32,
                                 "wall_s": 1.0, "metrics": {}})
        seen.update(per_stage=per_stage, steps=steps)

    monkeypatch.setattr(adapt, "run_stages", fake_run_stages)
    cache, val, out = tmp_path / "cache", tmp_path / "val", tmp_path / "adapted"
    write_cache(cache, CPU_SIZES, [1], shard_size=1)
    write_cache(val, CPU_SIZES, [2, 3], shard_size=2)
    assert adapt.main(["--base", str(BASE), "--cache", str(cache), "--val", str(val), "--out", str(out),
                       "--run-root", str(tmp_path / "runs"), "--val-examples", "2", "--stages", "specular_level"]) == 0
    assert seen["steps"] == {"specular_level": 3000}
    assert not any(o.startswith("init_weights=") for o in seen["per_stage"]["specular_level"])  # from scratch
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["specular_level"] == {"input_size": 64, "width": 16}
    assert "specular_level.safetensors" not in cfg["base"]["sha256"]
    nets = ReflectanceNetworks.from_safetensors(out)
    for k, v in nets.specular_level.state_dict().items():
        assert torch.equal(v, fresh[k])
    v = json.loads((out / "metrics.json").read_text())["validation"]
    assert "specular/psnr_leveled" in v["adapted"]["photo"] and "specular/psnr_leveled" not in v["base"]["photo"]
    card = (out / "MODEL_CARD.md").read_text()
    assert "| specular_level | scratch |" in card
    assert "| specular, at the specular-level regressor's mean | — |" in card


def test_an_enhancer_stage_needs_its_encoder_stage(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(adapt, "run_stages", lambda *a, **k: pytest.fail("trained"))
    args = ["--cache", str(tmp_path), "--val", str(tmp_path), "--out", str(tmp_path / "out")]
    assert adapt.main([*args, "--stages", "level", "albedo_enh"]) == 2
    assert "add albedo_ae" in capsys.readouterr().err


@pytest.mark.parametrize("what, needle", [("cache", "manifest"), ("base", "no level.safetensors")])
def test_adapt_user_errors_exit_2_before_training(tmp_path, monkeypatch, capsys, what, needle):
    monkeypatch.setattr(adapt, "run_stages", lambda *a, **k: pytest.fail("trained"))
    base = tmp_path / "base"
    base.mkdir()
    for name in ("albedo", "specular", "normal", "light"):
        (base / f"{name}.safetensors").write_bytes(b"")
    write_cache(tmp_path / "val", CPU_SIZES, [2], shard_size=1)
    args = ["--cache", str(tmp_path / ("none" if what == "cache" else "val")), "--val", str(tmp_path / "val"),
            "--out", str(tmp_path / "out"), "--base", str(BASE if what == "cache" else base)]
    assert adapt.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and needle in err and "\n" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_adapt_end_to_end_tiny(tmp_path):
    # the real stages, two steps each, on a photo-unwrapped cache of a few examples
    settings = GeneratorSettings(sizes=CPU_SIZES.sizes, bake_dirs=16, unwrap="photo")
    write_cache(tmp_path / "cache", settings, [1, 2, 3, 4], shard_size=4)
    write_cache(tmp_path / "val", settings, [5, 6], shard_size=2)
    out = tmp_path / "adapted"
    common = ["--cache", str(tmp_path / "cache"), "--val", str(tmp_path / "val"), "--out", str(out),
              "--run-root", str(tmp_path / "runs"), "--encoder-steps", "2", "--level-steps", "2",
              "--light-steps", "2", "--enhancer-steps", "2", "--specular-level-steps", "2", "--val-examples", "2",
              "--reuse"]
    assert adapt.main(common) == 0
    stages = json.loads((out / "metrics.json").read_text())["stages"]
    assert [s["stage"] for s in stages] == list(adapt.STAGES) and all(s["steps"] == 2 for s in stages)
    nets = ReflectanceNetworks.from_safetensors(out)
    base = ReflectanceNetworks.from_safetensors(BASE)
    dec = {k: v for k, v in nets.albedo.autoencoder.decoder.state_dict().items() if v.is_floating_point()}
    assert all(torch.equal(v, base.albedo.autoencoder.decoder.state_dict()[k]) for k, v in dec.items())
    assert not torch.equal(next(iter(nets.level.parameters())), next(iter(base.level.parameters())))
    assert not torch.equal(next(iter(nets.albedo.enhancer.parameters())), next(iter(base.albedo.enhancer.parameters())))
    # a second call reuses every stage
    assert adapt.main(common) == 0
