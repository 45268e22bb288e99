import json

import pytest
import torch
from omegaconf import OmegaConf

from facerefl.errors import InputError
from facerefl.models.networks import NetworksConfig, ReflectanceNetworks, shipped_dir
from tests.models.helpers import compose_train


def _sizes(tmp_path, preset):
    cfg = compose_train(tmp_path, [f"preset={preset}"])
    return NetworksConfig.from_dict(OmegaConf.to_container(cfg.sizes, resolve=True))


@pytest.fixture(scope="module")
def cpu_nets(tmp_path_factory):
    torch.manual_seed(0)
    return ReflectanceNetworks(_sizes(tmp_path_factory.mktemp("c"), "cpu")).freeze()


def test_cpu_preset_forward_shapes_and_fitting_api(cpu_nets):
    t = torch.rand(2, 4, 256, 256)
    code = cpu_nets.encode(t)
    assert code.albedo.z.shape == (2, 256) and code.specular.z.shape == (2, 128)
    assert len(code.normal.skips) == 3 and code.light.shape == (2, 3, 9)
    z = [c.z.clone().requires_grad_() for c in (code.albedo, code.specular, code.normal)]
    maps = cpu_nets.reflectance(code.with_z(*z), t)
    assert maps.albedo.shape == (2, 3, 128, 128)
    assert maps.specular.shape == (2, 1, 128, 128) and maps.normal.shape == (2, 3, 128, 128)
    (maps.albedo.mean() + maps.specular.mean() + maps.normal[:, 2].mean()).backward()
    assert all(v.grad is not None and v.grad.abs().sum() > 0 for v in z)
    assert all(p.grad is None for p in cpu_nets.parameters())
    assert not cpu_nets.training


def test_save_and_load_round_trip(cpu_nets, tmp_path):
    cpu_nets.save_safetensors(tmp_path, extra={"note": "test"})
    assert json.loads((tmp_path / "config.json").read_text())["albedo"]["latent_dim"] == 256
    loaded = ReflectanceNetworks.from_safetensors(tmp_path).freeze()
    t = torch.rand(1, 4, 128, 128)
    with torch.no_grad():
        a, la = cpu_nets(t)
        b, lb = loaded(t)
    assert torch.equal(a.albedo, b.albedo) and torch.equal(a.normal, b.normal) and torch.equal(la, lb)
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes leave no temp files


def test_missing_folder_is_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="config.json"):
        ReflectanceNetworks.from_safetensors(tmp_path)
    monkeypatch.setenv("FACEREFL_CHECKPOINTS", str(tmp_path))
    with pytest.raises(InputError, match="make train"):
        shipped_dir("paper")


def test_bad_size_config_is_a_clear_error():
    with pytest.raises(InputError, match="size config"):
        NetworksConfig.from_dict({"albedo": {}})


def test_paper_preset_sizes_and_forward(tmp_path):
    cfg = _sizes(tmp_path, "paper")
    assert (cfg.albedo.input_size, cfg.albedo.latent_dim) == (512, 1024)
    assert (cfg.specular.input_size, cfg.specular.latent_dim) == (256, 512)
    assert cfg.normal.output_size == cfg.specular.output_size == cfg.albedo.output_size == 1024
    assert cfg.light.input_size == 256
    torch.manual_seed(0)
    nets = ReflectanceNetworks(cfg).freeze()
    t = torch.rand(1, 4, 512, 512)
    with torch.no_grad():
        code = nets.encode(t)
        assert code.light.shape == (1, 3, 9) and code.albedo.z.shape == (1, 1024)
        coarse = nets.specular.decode(code.specular)
        assert coarse.shape == (1, 1, 256, 256)
        # The enhancers are fully convolutional: run them on a 16² crop. Full-size decoding
        # and enhancement of every branch is the slow test below.
        for k in ("albedo", "specular", "normal"):
            crop = torch.rand(1, 1 if k == "specular" else 3, 16, 16)
            out = nets.branch(k).enhance(crop, t[..., :64, :64])
            assert out.shape[-1] == 16 * nets.cfg.branch(k).enhancer_scale


@pytest.mark.slow
def test_paper_preset_full_forward(tmp_path):
    nets = ReflectanceNetworks(_sizes(tmp_path, "paper")).freeze()
    with torch.no_grad():
        maps, light = nets(torch.rand(1, 4, 1024, 1024))
    assert maps.albedo.shape == (1, 3, 1024, 1024) and maps.normal.shape == (1, 3, 1024, 1024)
    assert light.shape == (1, 3, 9)
