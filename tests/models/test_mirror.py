"""Mirror symmetry (beyond the paper): the template's UV layout is symmetric about u = 0.5,
so T flipped along u is the mirrored scene. The light regressor trains on flipped examples
with their mirrored lighting, and a checkpoint may average both regressors' answers for T
and its flip (``mirror_average``)."""

import dataclasses
import json

import numpy as np
import torch
from scipy.spatial import cKDTree

from facerefl.data.types import ReflectanceBatch
from facerefl.geometry.template import load_template
from facerefl.models.components.light import SHRegressor
from facerefl.models.light_module import LightRegressorModule
from facerefl.models.networks import ReflectanceNetworks
from facerefl.models.presets import preset_sizes
from facerefl.render.sh import sh_mirror_x


def test_template_uv_layout_is_mirror_symmetric():
    t = load_template()
    v, uv = np.asarray(t.vertices), np.asarray(t.uvs)
    mirrored = v * np.array([-1.0, 1.0, 1.0])
    dist, j = cKDTree(v).query(mirrored)
    assert dist.max() < 1e-6  # every vertex has its mirror twin
    # the twin sits at u -> 1 - u, same v: within half a texel of the 256-texel T
    assert np.abs(uv[j, 0] - (1.0 - uv[:, 0])).max() < 1.0 / 512
    assert np.abs(uv[j, 1] - uv[:, 1]).max() < 1.0 / 512


def test_mirror_average_runs_both_regressors_on_the_flipped_texture_too(tmp_path):
    sizes = preset_sizes("cpu")
    torch.manual_seed(0)
    plain = ReflectanceNetworks(sizes).freeze()
    mirrored = ReflectanceNetworks(dataclasses.replace(sizes, mirror_average=True)).freeze()
    mirrored.load_state_dict(plain.state_dict())
    t = torch.rand(2, 4, 128, 128)
    flipped = t.flip(-1)
    want_light = 0.5 * (plain.lighting(t) + sh_mirror_x(plain.lighting(flipped)))
    torch.testing.assert_close(mirrored.encode(t).light, want_light)
    want_level = (plain.albedo_level(t) * plain.albedo_level(flipped)).sqrt()
    torch.testing.assert_close(mirrored.albedo_level(t), want_level)
    # a mirror-symmetric answer: T and its flip give mirrored lights and equal levels
    torch.testing.assert_close(mirrored.encode(flipped).light, sh_mirror_x(mirrored.encode(t).light))
    torch.testing.assert_close(mirrored.albedo_level(flipped), mirrored.albedo_level(t))
    # the setting travels in config.json; configs without it stay unchanged
    mirrored.save_safetensors(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["mirror_average"] is True
    assert ReflectanceNetworks.from_safetensors(tmp_path / "m").cfg.mirror_average
    assert "mirror_average" not in plain.cfg.to_dict()


def test_light_training_mirrors_texture_and_lighting_together():
    torch.manual_seed(0)
    net = SHRegressor(input_size=16, width=4).eval()
    module = LightRegressorModule(net, optimizer=None, mirror=True)
    tex = torch.rand(6, 4, 16, 16)
    light = torch.randn(6, 3, 9)
    batch = ReflectanceBatch(texture=tex, albedo=torch.rand(6, 3, 16, 16), specular=torch.rand(6, 1, 8, 8),
                             normal=torch.rand(6, 3, 8, 8), light=light)
    module.log = lambda *a, **k: None
    torch.manual_seed(1)
    flip = torch.rand(6) < 0.5
    assert 0 < int(flip.sum()) < 6
    torch.manual_seed(1)
    loss = module.training_step(batch, 0)
    with torch.no_grad():
        want = torch.nn.functional.mse_loss(
            net(torch.where(flip[:, None, None, None], tex.flip(-1), tex)),
            torch.where(flip[:, None, None], sh_mirror_x(light), light))
    torch.testing.assert_close(loss.detach(), want)
