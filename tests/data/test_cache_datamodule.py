import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from facerefl.data.assemble import ExampleGenerator, GeneratorSettings, Sizes
from facerefl.data.cache import (CachedDataset, SyntheticDataset, cache_count, open_caches, read_manifest,
                                 write_cache)
from facerefl.data.datamodule import SyntheticDataModule
from facerefl.data.make_cache import main as make_cache_main
from facerefl.errors import InputError, OutputExistsError

SMALL = GeneratorSettings(sizes=Sizes(image=48, texture=32, detail=16), bake_dirs=16)
CONF = Path(__file__).resolve().parents[2] / "conf"


def test_cache_roundtrip_matches_generator(tmp_path):
    m = write_cache(tmp_path / "c", SMALL, [3, 4, 5], shard_size=2, fields=None, half=False)
    assert m["count"] == 3 and [s["count"] for s in m["shards"]] == [2, 1]
    ds = CachedDataset(tmp_path / "c")
    ref = ExampleGenerator(SMALL)(5)
    got = ds[2]
    for k, v in ref.tensors().items():
        assert torch.equal(got.tensors()[k], v), k
    with pytest.raises(IndexError):
        ds[3]


def test_half_cache_is_close_and_reads_float32(tmp_path):
    write_cache(tmp_path / "c", SMALL, [7], shard_size=4)
    got = CachedDataset(tmp_path / "c")[0]
    ref = ExampleGenerator(SMALL)(7)
    assert got.albedo.dtype == torch.float32 and got.image is None
    assert torch.allclose(got.albedo, ref.albedo, atol=1e-3)
    assert json.loads((tmp_path / "c" / "manifest.json").read_text())["fields"]["albedo"]["dtype"] == "float16"


def test_several_caches_read_as_one_set_in_order(tmp_path):
    write_cache(tmp_path / "a", SMALL, [1, 2, 3], shard_size=2)
    write_cache(tmp_path / "b", SMALL, [4, 5], shard_size=1)
    ds = open_caches([tmp_path / "a", str(tmp_path / "b")])
    assert len(ds) == 5 == cache_count([tmp_path / "a", tmp_path / "b"])
    # random access across shards and folders, and back again, gives each example's seed
    for i in [4, 0, 3, 1, 4, 2]:
        assert int(ds[i].seed) == i + 1
    assert isinstance(open_caches(tmp_path / "a"), CachedDataset)
    write_cache(tmp_path / "c", SMALL, [6], shard_size=1, fields=("texture", "seed"))
    with pytest.raises(InputError, match="other fields"):
        open_caches([tmp_path / "a", tmp_path / "c"])
    dm = SyntheticDataModule(image=48, texture=32, detail=16, batch_size=5, bake_dirs=16,
                             cache_dir=[str(tmp_path / "a"), str(tmp_path / "b")])
    assert sorted(next(iter(dm.train_dataloader())).seed.tolist()) == [1, 2, 3, 4, 5]


def test_rejected_seeds_are_skipped_and_recorded(tmp_path, monkeypatch):
    import facerefl.data.cache as cache

    gen = ExampleGenerator(SMALL)
    monkeypatch.setattr(cache, "generate", lambda settings, seeds, workers: iter(
        [gen(seeds[0]), "no face found", gen(seeds[2]), gen(seeds[3])]))
    m = write_cache(tmp_path / "c", SMALL, [10, 11, 12, 13], shard_size=2)
    assert m["count"] == 3 and m["skipped"] == {"11": "no face found"}
    assert [sh["seeds"] for sh in m["shards"]] == [[10, 12], [13]]
    ds = CachedDataset(tmp_path / "c")
    assert [int(ds[i].seed) for i in range(len(ds))] == [10, 12, 13]


def test_cache_refuses_overwrite_and_bad_folder(tmp_path):
    write_cache(tmp_path / "c", SMALL, [1], shard_size=1)
    with pytest.raises(OutputExistsError):
        write_cache(tmp_path / "c", SMALL, [2], shard_size=1)
    with pytest.raises(InputError, match="make_cache"):
        read_manifest(tmp_path / "nothing")


def test_make_cache_cli_errors_are_one_line(tmp_path, capsys):
    assert make_cache_main(["--out", str(tmp_path / "x"), "--n", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1
    assert make_cache_main(["--out", str(tmp_path / "x"), "--n", "1", "--image", "8"]) == 2


def test_datamodule_batches_on_the_fly_and_from_cache(tmp_path):
    dm = SyntheticDataModule(image=48, texture=32, detail=16, batch_size=2, num_train=4,
                             num_val=2, bake_dirs=16)
    b = next(iter(dm.train_dataloader()))
    assert b.texture.shape == (2, 4, 32, 32) and b.light.shape == (2, 3, 9)
    v = next(iter(dm.val_dataloader()))
    assert not torch.equal(v.seed, b.seed)
    write_cache(tmp_path / "c", SMALL, [0, 1, 2], shard_size=2)
    dm2 = SyntheticDataModule(batch_size=3, cache_dir=str(tmp_path / "c"), num_val=1,
                              image=48, texture=32, detail=16, bake_dirs=16)
    b2 = next(iter(dm2.train_dataloader()))
    assert sorted(b2.seed.tolist()) == [0, 1, 2]


def test_on_the_fly_dataset_is_order_independent():
    ds = SyntheticDataset(SMALL, 3, first_seed=10)
    a = ds[2]
    ds2 = SyntheticDataset(SMALL, 3, first_seed=10)
    ds2[0]
    assert torch.equal(ds2[2].texture, a.texture)


@pytest.mark.parametrize("name", ["synthetic", "synthetic_paper"])
def test_data_configs_instantiate(name):
    with initialize_config_dir(config_dir=str(CONF / "data"), version_base="1.3"):
        cfg = compose(config_name=name)
    dm = instantiate(cfg)
    assert isinstance(dm, SyntheticDataModule)
    z = dm.settings.sizes
    assert (z.texture, z.detail) == ((128, 128) if name == "synthetic" else (1024, 512))


def test_epoch_sampler_gives_new_reproducible_indices():
    from facerefl.data.cache import EpochSampler

    s = EpochSampler(4, seed=3)
    e0, e1 = list(s), list(s)
    assert sorted(e0) == [0, 1, 2, 3] and sorted(e1) == [4, 5, 6, 7]
    t = EpochSampler(4, seed=3)
    assert list(t) == e0 and list(t) == e1


def test_fresh_epochs_in_datamodule():
    dm = SyntheticDataModule(image=48, texture=32, detail=16, batch_size=2, num_train=2,
                             num_val=1, bake_dirs=16)
    loader = dm.train_dataloader()
    first = next(iter(loader)).seed
    second = next(iter(loader)).seed
    assert sorted(first.tolist()) == [0, 1] and sorted(second.tolist()) == [2, 3]
