"""The albedo- and specular-level regressors: their targets, their training module, and their
place in a checkpoint."""

import dataclasses
import json
import math

import pytest
import torch
from omegaconf import OmegaConf

from facerefl.data.types import ReflectanceBatch
from facerefl.models.components.level import (AlbedoLevelRegressor, eyes_fixed, level_errors, rescale_to_level,
                                              skin_level)
from facerefl.models.level_module import AlbedoLevelModule
from facerefl.models.networks import (LEVEL_FILE, SPECULAR_LEVEL_FILE, LightConfig, NetworksConfig,
                                      ReflectanceNetworks)
from facerefl.models.presets import preset_sizes
from facerefl.render.color import srgb_to_linear


def _texture(b=2, size=32, rgb=0.5):
    t = torch.full((b, 4, size, size), rgb)
    t[:, 3] = 0.0
    t[:, 3, 8:24, 8:24] = 1.0  # skin in the middle only
    return t


def test_skin_level_is_the_mean_over_the_skin_only():
    albedo = torch.zeros(2, 3, 16, 16)
    albedo[:, :, 4:12, 4:12] = torch.tensor([0.6, 0.4, 0.3])[:, None, None]
    albedo[:, :, :2] = 1.0  # off the skin: ignored
    level = skin_level(albedo, _texture())
    torch.testing.assert_close(level, torch.tensor([[0.6, 0.4, 0.3]] * 2))
    empty = _texture(1)
    empty[:, 3] = 0.0  # no skin at all: the whole map
    torch.testing.assert_close(skin_level(torch.full((1, 3, 8, 8), 0.25), empty), torch.full((1, 3), 0.25))


def test_level_errors_are_log_ratios():
    albedo = torch.full((1, 3, 16, 16), 0.4)
    err = level_errors(torch.log(torch.tensor([[0.8, 0.4, 0.2]])), albedo, _texture(1))
    torch.testing.assert_close(err, torch.log(torch.tensor([[2.0, 1.0, 0.5]])))


def test_regressor_shapes_and_positive_level():
    net = AlbedoLevelRegressor(input_size=32, width=4).eval()
    with torch.no_grad():
        out = net(_texture(3, 64))
        level = net.level(_texture(3, 64))
    assert out.shape == (3, 3) and level.shape == (3, 3)
    assert bool((level > 0).all()) and torch.allclose(level, out.exp())


def test_training_learns_a_level_that_the_texture_shows():
    """Two kinds of example whose brightness tells their albedo level apart: a few Adam
    steps must bring the log error well below that of predicting their average."""
    torch.manual_seed(0)
    tex = torch.cat([_texture(8, 32, 0.2), _texture(8, 32, 0.8)])
    albedo = torch.cat([torch.full((8, 3, 32, 32), 0.15), torch.full((8, 3, 32, 32), 0.6)])
    batch = ReflectanceBatch(texture=tex, albedo=albedo, specular=torch.zeros(16, 1, 8, 8),
                             normal=torch.zeros(16, 3, 8, 8), light=torch.zeros(16, 3, 9))
    module = AlbedoLevelModule(AlbedoLevelRegressor(32, 4), optimizer=lambda params: torch.optim.Adam(params, lr=3e-3),
                               mirror=True)
    opt = module.configure_optimizers()
    module.log = lambda *a, **k: None  # no trainer attached
    for _ in range(150):
        opt.zero_grad()
        module.training_step(batch, 0).backward()
        opt.step()
    module.eval()
    with torch.no_grad():
        err = level_errors(module(tex), albedo, tex)
    baseline = abs(torch.log(torch.tensor(0.15)) - torch.log(torch.tensor(0.3)))  # the geometric mean
    assert float(err.abs().max()) < 0.2 * float(baseline)


def test_checkpoint_with_and_without_a_level_regressor(tmp_path):
    sizes = preset_sizes("cpu")
    assert sizes.level is not None
    torch.manual_seed(0)
    nets = ReflectanceNetworks(sizes).freeze()
    nets.save_safetensors(tmp_path / "with")
    assert (tmp_path / "with" / LEVEL_FILE).is_file()
    loaded = ReflectanceNetworks.from_safetensors(tmp_path / "with").freeze()
    t = torch.rand(1, 4, 128, 128)
    assert torch.equal(nets.albedo_level(t), loaded.albedo_level(t))
    # older checkpoints have no level: no key in the config, no file, and None from the API
    old = ReflectanceNetworks(sizes.without_level()).freeze()
    old.save_safetensors(tmp_path / "without")
    assert "level" not in json.loads((tmp_path / "without" / "config.json").read_text())
    assert not (tmp_path / "without" / LEVEL_FILE).exists()
    again = ReflectanceNetworks.from_safetensors(tmp_path / "without")
    assert again.level is None and again.albedo_level(t) is None
    assert NetworksConfig.from_dict(old.cfg.to_dict()) == old.cfg


def test_exposure_augmentation_rescales_the_light_only():
    torch.manual_seed(0)
    net = AlbedoLevelRegressor(input_size=16, width=4)
    seen = []
    net.forward = lambda t: seen.append(t) or torch.zeros(t.shape[0], 3)
    # as Hydra passes it; the checkpoint's hyperparameters must stay plain data
    module = AlbedoLevelModule(net, optimizer=None, mirror=False, exposure=OmegaConf.create([-1.0, -1.0]))
    assert "exposure" not in module.hparams
    module.log = lambda *a, **k: None
    tex = _texture(b=3, size=16)
    batch = ReflectanceBatch(texture=tex, albedo=torch.full((3, 3, 16, 16), 0.3), specular=torch.rand(3, 1, 8, 8),
                             normal=torch.rand(3, 3, 8, 8), light=torch.rand(3, 3, 9))
    loss = module.training_step(batch, 0)
    got = seen[0]
    torch.testing.assert_close(srgb_to_linear(got[:, :3]), srgb_to_linear(tex[:, :3]) * math.exp(-1.0))
    assert torch.equal(got[:, 3:], tex[:, 3:])  # the mask is not touched
    # the target is the true level, whatever the exposure
    torch.testing.assert_close(loss, (torch.log(torch.tensor(0.3))).square())


def test_rescale_to_level_moves_the_skin_mean_and_clamps():
    tex = _texture(1, 16)
    spec = torch.full((1, 1, 16, 16), 0.2)
    out, scale = rescale_to_level(spec, torch.tensor([[0.3]]), tex)
    torch.testing.assert_close(skin_level(out, tex), torch.tensor([[0.3]]))
    torch.testing.assert_close(scale, torch.tensor([[1.5]]))
    high, _ = rescale_to_level(spec, torch.tensor([[4.0]]), tex)
    assert float(high.max()) == 1.0


def test_rescale_to_level_leaves_fixed_texels_alone():
    tex = _texture(1, 16)
    spec = torch.full((1, 1, 16, 16), 0.2)
    fixed = torch.zeros(16, 16)
    fixed[0:4, 0:4] = 1.0   # outside the skin: kept
    fixed[0:4, 4:8] = 0.5   # half kept: scaled by 1 + (1.5 - 1) / 2
    out, scale = rescale_to_level(spec, torch.tensor([[0.3]]), tex, fixed=fixed)
    torch.testing.assert_close(skin_level(out, tex), torch.tensor([[0.3]]))
    torch.testing.assert_close(out[0, 0, 0:4, 0:4], torch.full((4, 4), 0.2))
    torch.testing.assert_close(out[0, 0, 0:4, 4:8], torch.full((4, 4), 0.25))
    torch.testing.assert_close(out[0, 0, 8:, 8:], torch.full((8, 8), 0.3))


def test_eyes_fixed_matches_the_map_grid():
    spec = torch.zeros(2, 1, 32, 32, dtype=torch.float64)
    fixed = eyes_fixed(spec)
    assert fixed.shape == (32, 32) and fixed.dtype == torch.float64
    assert 0 < float(fixed.sum()) < 0.05 * 32 * 32


def test_white_balance_augmentation_changes_each_channel_within_its_range():
    torch.manual_seed(0)
    net = AlbedoLevelRegressor(input_size=16, width=4, channels=1)
    seen = []
    net.forward = lambda t: seen.append(t) or torch.zeros(t.shape[0], 1)
    module = AlbedoLevelModule(net, optimizer=None, mirror=False, target="specular", white_balance=0.2)
    module.log = lambda *a, **k: None
    tex = _texture(b=64, size=16, rgb=0.4)
    spec = torch.full((64, 1, 16, 16), 0.3)
    batch = ReflectanceBatch(texture=tex, albedo=torch.full((64, 3, 16, 16), 0.5), specular=spec,
                             normal=torch.rand(64, 3, 8, 8), light=torch.rand(64, 3, 9))
    loss = module.training_step(batch, 0)
    gain = srgb_to_linear(seen[0][:, :3, 0, 0]) / srgb_to_linear(tex[:, :3, 0, 0])
    log_gain = gain.log()
    assert float(log_gain.abs().max()) <= 0.2 + 1e-5
    assert float(log_gain.std()) > 0.05          # the gains vary ...
    assert float((log_gain[:, 0] - log_gain[:, 1]).abs().max()) > 0.05   # ... per channel
    assert torch.equal(seen[0][:, 3:], tex[:, 3:])
    torch.testing.assert_close(loss, (torch.log(torch.tensor(0.3))).square())


def test_specular_target_trains_a_one_channel_level():
    torch.manual_seed(0)
    tex = torch.cat([_texture(4, 32, 0.3), _texture(4, 32, 0.7)])
    spec = torch.cat([torch.full((4, 1, 16, 16), 0.2), torch.full((4, 1, 16, 16), 0.5)])
    batch = ReflectanceBatch(texture=tex, albedo=torch.full((8, 3, 16, 16), 0.9), specular=spec,
                             normal=torch.zeros(8, 3, 8, 8), light=torch.zeros(8, 3, 9))
    module = AlbedoLevelModule(AlbedoLevelRegressor(32, 4, channels=1), optimizer=None, target="specular")
    module.log = lambda *a, **k: None
    loss = module.training_step(batch, 0)
    with torch.no_grad():
        expected = level_errors(module.net(tex), spec, tex).square().mean()
    # the loss is against the specular map's level, not the albedo's (mirroring leaves a
    # uniform texture's answer unchanged)
    torch.testing.assert_close(loss.detach(), expected)
    with pytest.raises(ValueError, match="target"):
        AlbedoLevelModule(AlbedoLevelRegressor(32, 4), optimizer=None, target="normal")


def test_checkpoint_with_a_specular_level_regressor(tmp_path):
    sizes = dataclasses.replace(preset_sizes("cpu"), specular_level=LightConfig(32, 4), mirror_average=True)
    torch.manual_seed(0)
    nets = ReflectanceNetworks(sizes).freeze()
    nets.save_safetensors(tmp_path / "spec")
    assert (tmp_path / "spec" / SPECULAR_LEVEL_FILE).is_file()
    assert json.loads((tmp_path / "spec" / "config.json").read_text())["specular_level"] == {"input_size": 32, "width": 4}
    loaded = ReflectanceNetworks.from_safetensors(tmp_path / "spec").freeze()
    t = torch.rand(2, 4, 64, 64)
    got = loaded.specular_mean(t)
    assert got.shape == (2, 1) and bool((got > 0).all())
    # mirror-averaged in log space, as the albedo level
    expected = (0.5 * (nets.specular_level(t) + nets.specular_level(t.flip(-1)))).exp()
    torch.testing.assert_close(got, expected)
    plain = ReflectanceNetworks(preset_sizes("cpu")).freeze()
    assert plain.specular_mean(t) is None and "specular_level" not in plain.cfg.to_dict()
