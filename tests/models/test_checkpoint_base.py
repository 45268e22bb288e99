"""Checkpoint folders that borrow unchanged tensors from a base folder (``"base"`` in
config.json; e.g. cpu_noskip borrows cpu's enhancers and light regressor)."""

import hashlib
import json
import shutil
from dataclasses import replace

import pytest
import torch
from safetensors import safe_open

from facerefl.errors import InputError
from facerefl.models.components.heads import KINDS
from facerefl.models.networks import NetworksConfig, ReflectanceNetworks

SIZES = {k: {"input_size": 16, "latent_dim": 8, "base_channels": 4, "max_channels": 8,
             "enhancer_scale": 2, "enhancer_channels": 4, "enhancer_blocks": 1} for k in KINDS}
SIZES["light"] = {"input_size": 16, "width": 4}


def _nets(seed, use_skips=True, **enh):
    cfg = NetworksConfig.from_dict(SIZES)
    cfg = replace(cfg, **{k: replace(cfg.branch(k), use_skips=use_skips, **enh) for k in KINDS})
    torch.manual_seed(seed)
    return ReflectanceNetworks(cfg).freeze()


def _noskip_from(base_nets, seed):
    """``base_nets`` with new autoencoders without skips (as train_all --no-skip builds)."""
    nets = _nets(seed, use_skips=False)
    for k in KINDS:
        nets.branch(k).enhancer.load_state_dict(base_nets.branch(k).enhancer.state_dict())
    nets.light.load_state_dict(base_nets.light.state_dict())
    return nets


def _keys(path):
    with safe_open(str(path), framework="pt") as f:
        return list(f.keys())


def _outputs(nets):
    t = torch.rand(2, 4, 16, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        maps, light = nets(t)
    return [maps.albedo, maps.specular, maps.normal, light]


@pytest.fixture
def pair(tmp_path):
    """(base nets, derived nets, base folder, derived folder) written to ``tmp_path``."""
    a = _nets(0)
    b = _noskip_from(a, 1)
    a.save_safetensors(tmp_path / "a")
    b.save_safetensors(tmp_path / "b", base=tmp_path / "a")
    return a, b, tmp_path / "a", tmp_path / "b"


def _edit_base(folder, fn):
    cfg = json.loads((folder / "config.json").read_text())
    fn(cfg)
    (folder / "config.json").write_text(json.dumps(cfg))


def test_derived_folder_holds_only_what_differs_and_loads_back(pair):
    a, b, _, fb = pair
    assert sorted(p.name for p in fb.iterdir()) == ["albedo.safetensors", "config.json",
                                                   "normal.safetensors", "specular.safetensors"]
    for k in KINDS:
        keys = _keys(fb / f"{k}.safetensors")
        assert keys and all(n.startswith("autoencoder.") for n in keys)
    base = json.loads((fb / "config.json").read_text())["base"]
    assert base["folder"] == "../a" and len(base["sha256"]) == 4
    loaded = ReflectanceNetworks.from_safetensors(fb).freeze()
    assert not loaded.cfg.albedo.use_skips
    for x, y in zip(_outputs(loaded), _outputs(b)):
        assert torch.equal(x, y)
    assert not all(torch.equal(x, y) for x, y in zip(_outputs(loaded), _outputs(a)))


def test_one_changed_tensor_is_all_that_is_written(tmp_path):
    a = _nets(0)
    a.save_safetensors(tmp_path / "a")
    b = _nets(0)
    with torch.no_grad():
        next(b.specular.enhancer.parameters()).add_(1.0)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "light.safetensors").write_bytes(b"stale")  # an older full copy
    b.save_safetensors(tmp_path / "b", base=tmp_path / "a")
    files = sorted(p.name for p in (tmp_path / "b").iterdir())
    assert files == ["config.json", "specular.safetensors"]
    assert len(_keys(tmp_path / "b" / "specular.safetensors")) == 1
    loaded = ReflectanceNetworks.from_safetensors(tmp_path / "b").freeze()
    assert all(torch.equal(x, y) for x, y in zip(_outputs(loaded), _outputs(b)))


def test_without_base_every_file_is_written(tmp_path):
    _nets(0).save_safetensors(tmp_path)
    assert "base" not in json.loads((tmp_path / "config.json").read_text())
    assert len(list(tmp_path.glob("*.safetensors"))) == 4


def test_changed_base_file_is_refused(pair):
    _, _, fa, fb = pair
    _nets(5).save_safetensors(fa)  # the base retrained: same names, other weights
    with pytest.raises(InputError, match="changed since .* re-export"):
        ReflectanceNetworks.from_safetensors(fb)


def test_missing_base_folder_or_file_is_refused(pair):
    _, _, fa, fb = pair
    (fa / "light.safetensors").unlink()
    with pytest.raises(InputError, match="lacks it"):
        ReflectanceNetworks.from_safetensors(fb)
    shutil.rmtree(fa)
    with pytest.raises(InputError, match="no config.json.*base of"):
        ReflectanceNetworks.from_safetensors(fb)


@pytest.mark.parametrize("edit, needle", [
    (lambda c: c.__setitem__("base", "../a"), "bad 'base' entry"),
    (lambda c: c["base"].pop("sha256"), "bad 'base' entry"),
    (lambda c: c["base"].__setitem__("sha256", {}), "bad 'base' entry"),
    (lambda c: c["base"]["sha256"].__setitem__("../../x.safetensors", "0" * 64), "unknown files"),
    (lambda c: c["base"].__setitem__("folder", "."), "names itself"),
])
def test_bad_base_entry_is_a_clear_error(pair, edit, needle):
    _edit_base(pair[3], edit)
    with pytest.raises(InputError, match=needle):
        ReflectanceNetworks.from_safetensors(pair[3])


def test_bases_do_not_chain(pair, tmp_path):
    _, b, _, fb = pair
    with pytest.raises(InputError, match="do not chain"):
        b.save_safetensors(tmp_path / "c", base=fb)
    with pytest.raises(InputError, match="names itself"):
        b.save_safetensors(fb, base=fb)
    shutil.copytree(fb, tmp_path / "c")
    _edit_base(tmp_path / "c", lambda c: c["base"].__setitem__("folder", "../b"))
    with pytest.raises(InputError, match="do not chain"):
        ReflectanceNetworks.from_safetensors(tmp_path / "c")


def test_base_of_other_sizes_is_a_clear_error(pair, tmp_path):
    # digests that match, but tensors that do not fit this folder's config.json
    _, _, _, fb = pair
    other = tmp_path / "wide"
    _nets(0, enhancer_channels=8).save_safetensors(other)
    wide_digests = {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in other.glob("*.safetensors")}
    _edit_base(fb, lambda c: c.__setitem__("base", {"folder": "../wide", "sha256": wide_digests}))
    with pytest.raises(InputError, match="do not fit"):
        ReflectanceNetworks.from_safetensors(fb)
