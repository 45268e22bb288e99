import pytest
import torch

from facerefl.data.assemble import TEST_MAPS, ExampleGenerator, GeneratorSettings, Sizes, stage_rng
from facerefl.data.types import ReflectanceBatch

SMALL = Sizes(image=64, texture=64, detail=32)


@pytest.fixture(scope="module")
def gen():
    return ExampleGenerator(GeneratorSettings(sizes=SMALL, bake_dirs=32))


def test_same_seed_bit_identical_different_seeds_differ(gen):
    a, b, c = gen(11), gen(11), gen(12)
    for name, t in a.tensors().items():
        assert torch.equal(t, b.tensors()[name]), name
    for name in ("texture", "albedo", "normal", "light", "image", "vertices"):
        assert not torch.equal(a.tensors()[name], c.tensors()[name]), name


def test_example_contract(gen):
    b = gen(3)
    assert isinstance(b, ReflectanceBatch) and b.batch_size == 1
    assert b.texture.shape == (1, 4, 64, 64) and b.albedo.shape == (1, 3, 64, 64)
    assert b.specular.shape == (1, 1, 32, 32) and b.normal.shape == (1, 3, 32, 32)
    assert b.image.shape == (1, 3, 64, 64) and b.vertices.shape == (1, 468, 3)
    mask = b.texture[0, 3]
    assert set(mask.unique().tolist()) <= {0.0, 1.0} and mask.mean() > 0.2
    assert 0 <= float(b.texture.min()) and float(b.texture.max()) <= 1
    # the skin mask only marks texels the photo saw
    assert bool((mask <= b.uv_mask[0, 0]).all())
    assert float(b.vertices[0, :, 2].max()) < 0  # in front of the camera


def test_training_lights_exclude_test_maps(gen):
    assert not set(gen.prior.names) & set(TEST_MAPS)


def test_unwrapped_texture_is_aligned_with_albedo():
    """High-passed log T correlates best with high-passed log albedo at zero UV shift."""
    import torch.nn.functional as F

    from facerefl.data.sensor import SensorSettings
    from facerefl.render.color import srgb_to_linear

    clean = SensorSettings(photons=(1e9, 1e9), read_noise=(0.0, 0.0), jpeg_quality=(0, 0))
    g = ExampleGenerator(GeneratorSettings(sizes=Sizes(128, 64, 32), bake_dirs=32, sensor=clean))
    b = g(9)

    def hp(x):
        x = x.clamp_min(1e-3).log().mean(0)
        k = torch.ones(1, 1, 5, 5) / 25
        return x - F.conv2d(F.pad(x[None, None], (2, 2, 2, 2), mode="replicate"), k)[0, 0]

    t, a = hp(srgb_to_linear(b.texture[0, :3])), hp(b.albedo[0])
    m = b.texture[0, 3] > 0.5
    m[:4], m[-4:], m[:, :4], m[:, -4:] = False, False, False, False
    corr = {(dy, dx): torch.corrcoef(torch.stack([t[m], torch.roll(a, (dy, dx), (0, 1))[m]]))[0, 1]
            for dy in (-2, 0, 2) for dx in (-2, 0, 2)}
    assert max(corr, key=corr.get) == (0, 0)
    assert corr[(0, 0)] > 0.2


def test_photo_unwrap_feeds_the_geometry_stages_texture(tmp_path):
    """unwrap="photo": T is what the fit of the rendered photo unwraps, the targets are the
    same as with the scene's own mesh; a photo the geometry stage rejects is skipped."""
    from facerefl.data.assemble import UnwrapFailed, photo_texture
    from facerefl.data.cache import read_manifest, write_cache
    from facerefl.errors import InputError

    sizes = Sizes(image=256, texture=64, detail=32)
    truth = ExampleGenerator(GeneratorSettings(sizes=sizes, bake_dirs=32))(5)
    photo = ExampleGenerator(GeneratorSettings(sizes=sizes, bake_dirs=32, unwrap="photo"))(5)
    assert photo.texture.shape == truth.texture.shape == (1, 4, 64, 64)
    for name in ("albedo", "light", "image"):
        assert torch.equal(photo.tensors()[name], truth.tensors()[name]), name
    tex, seen = photo_texture(truth.image[0], 64)
    assert torch.equal(tex, photo.texture) and torch.equal(seen, photo.uv_mask)
    # another unwrap, yet the same face: the masks overlap and the skin colours agree
    a, b = truth.texture[0, 3] > 0.5, photo.texture[0, 3] > 0.5
    assert (a & b).sum() > 0.7 * a.sum() and not torch.equal(photo.texture, truth.texture)
    mean = lambda t, m: t[0, :3][:, m].mean(1)  # noqa: E731
    assert torch.allclose(mean(photo.texture, a & b), mean(truth.texture, a & b), atol=0.08)
    # a 48-pixel photo is below the geometry stage's minimum face size
    tiny = GeneratorSettings(sizes=Sizes(image=48, texture=32, detail=16), bake_dirs=16, unwrap="photo")
    with pytest.raises(UnwrapFailed):
        ExampleGenerator(tiny)(1)
    with pytest.raises(InputError, match="rejected all 2"):
        write_cache(tmp_path / "c", tiny, [1, 2])
    mixed = GeneratorSettings(sizes=sizes, bake_dirs=16, unwrap="photo")
    m = write_cache(tmp_path / "m", mixed, [5], shard_size=1)
    assert m["count"] == 1 and m["shards"][0]["seeds"] == [5] and "skipped" not in m
    assert read_manifest(tmp_path / "m")["settings"]["unwrap"] == "photo"


def test_bad_renderer_raises():
    with pytest.raises(ValueError, match="unwrap"):
        GeneratorSettings(unwrap="guess")
    with pytest.raises(ValueError, match="renderer"):
        GeneratorSettings(renderer="rt")
    with pytest.raises(ValueError, match="size"):
        Sizes(image=4096)


def test_monte_carlo_test_examples_are_deterministic_and_lit_by_held_out_maps():
    s = GeneratorSettings(sizes=Sizes(image=32, texture=32, detail=16), renderer="mc", spp=4,
                          bake_dirs=16, maps=TEST_MAPS)
    g = ExampleGenerator(s)
    assert sorted(g.prior.names) == sorted(TEST_MAPS)
    a, b = g(1_000_000_000), g(1_000_000_000)
    assert torch.equal(a.image, b.image) and torch.equal(a.texture, b.texture)
    # the SH ground truth is the held-out map's projection, rotated and scaled
    light = g.prior.sample(stage_rng(1_000_000_000, "light"))
    assert light.name in TEST_MAPS and torch.equal(a.light[0], light.sh)
