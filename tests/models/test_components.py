import pytest
import torch

from facerefl.models.components.autoencoder import (
    Decoder, Encoder, ReflectanceAutoencoder, level_channels,
)
from facerefl.models.components.enhancer import DetailEnhancer, Discriminator
from facerefl.models.components.heads import head_apply, head_inverse, map_channels
from facerefl.models.components.light import SHRegressor


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_encoder_shapes_and_three_skips():
    enc = Encoder(input_size=64, latent_dim=40, base_channels=8, max_channels=32)
    skips, z = enc(torch.rand(2, 4, 64, 64))
    assert z.shape == (2, 40)
    assert [tuple(f.shape) for f in skips] == [(2, 8, 32, 32), (2, 16, 16, 16), (2, 32, 8, 8)]
    # repeated 3x3 stride-2 conv, each followed by LeakyReLU then BatchNorm
    first = enc.layers[0]
    assert first[0].kernel_size == (3, 3) and first[0].stride == (2, 2)
    assert isinstance(first[1], torch.nn.LeakyReLU) and isinstance(first[2], torch.nn.BatchNorm2d)
    assert len(enc.layers) + 1 == 6  # 64 → 1 in six stride-2 layers


def test_encoder_rejects_wrong_size():
    enc = Encoder(input_size=32, latent_dim=8, base_channels=4, max_channels=8)
    with pytest.raises(ValueError, match="32, 32"):
        enc(torch.rand(1, 4, 16, 16))
    with pytest.raises(ValueError, match="power of two"):
        Encoder(input_size=48)


@pytest.mark.parametrize("kind", ["albedo", "specular", "normal"])
def test_decoder_valid_ranges(kind):
    ae = ReflectanceAutoencoder(kind, 32, 16, 8, 32)
    with torch.no_grad():
        out = ae(torch.rand(3, 4, 64, 64) * 10 - 5)  # any size: resized to 32
    assert out.shape == (3, map_channels(kind), 32, 32)
    if kind == "normal":
        assert torch.allclose(out.norm(dim=1), torch.ones(3, 32, 32), atol=1e-5)
        assert (out[:, 2] > 0).all()
    else:
        assert out.min() >= 0 and out.max() <= 1


def test_decoder_uses_only_first_three_skips_and_ablation_ignores_them():
    enc = Encoder(64, 16, 8, 32).eval()
    skips, z = enc(torch.rand(1, 4, 64, 64))
    assert len(skips) == 3
    dec = Decoder("albedo", 64, 16, 8, 32, use_skips=True).eval()
    changed = [s.clone() for s in skips]
    changed[2] = changed[2] + 1.0
    with torch.no_grad():
        a, b = dec(skips, z), dec(changed, z)
    assert (a - b).abs().max() > 1e-4  # F^3 reaches the output
    nos = Decoder("albedo", 64, 16, 8, 32, use_skips=False).eval()
    with torch.no_grad():
        c, d = nos(skips, z), nos([torch.zeros_like(s) for s in skips], z)
        e = nos(skips, z + 1.0)
    assert torch.equal(c, d)
    assert (c - e).abs().max() > 1e-6
    # no-skip decoder has fewer input channels in its skip levels
    n_skip = sum(p.numel() for p in dec.parameters())
    assert sum(p.numel() for p in nos.parameters()) < n_skip


def test_decoder_gradient_reaches_z_in_eval_mode():
    ae = ReflectanceAutoencoder("normal", 32, 16, 8, 16).eval().requires_grad_(False)
    skips, z = ae.encode(torch.rand(1, 4, 32, 32))
    z = z.clone().requires_grad_()
    ae.decode(skips, z).sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert all(p.grad is None for p in ae.parameters())


@pytest.mark.parametrize("kind", ["albedo", "specular", "normal"])
def test_head_inverse_round_trip(kind):
    v = torch.randn(2, map_channels(kind), 5, 5)
    m = head_apply(v, kind)
    assert torch.allclose(head_apply(head_inverse(m, kind), kind), m, atol=1e-4)


@pytest.mark.parametrize("kind,scale,tex", [("albedo", 2, False), ("normal", 4, True), ("specular", 4, True)])
def test_untrained_enhancer_is_bilinear_upsampling(kind, scale, tex):
    r = DetailEnhancer(kind, scale, channels=8, num_blocks=1, use_texture=tex).eval()
    x = head_apply(torch.randn(2, map_channels(kind), 8, 8), kind)
    t = torch.rand(2, 4, 32, 32)
    with torch.no_grad():
        y = r(x, t)
    ref = torch.nn.functional.interpolate(x, scale_factor=scale, mode="bilinear")
    if kind == "normal":
        ref = ref / ref.norm(dim=1, keepdim=True)
    assert y.shape == (2, map_channels(kind), 8 * scale, 8 * scale)
    assert torch.allclose(y, ref, atol=2e-3)


def test_enhancer_changes_output_after_update_and_keeps_range():
    r = DetailEnhancer("albedo", 2, channels=8, num_blocks=1)
    x = torch.rand(2, 3, 8, 8)
    opt = torch.optim.SGD(r.parameters(), lr=10.0)
    r(x).sum().backward()
    opt.step()
    with torch.no_grad():
        y = r.eval()(x)
    assert y.min() >= 0 and y.max() <= 1
    up = torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear")
    assert (y - up).abs().max() > 1e-3


def test_enhancer_needs_texture_for_specular():
    r = DetailEnhancer("specular", 4, channels=8, num_blocks=1, use_texture=True)
    with pytest.raises(ValueError, match="texture"):
        r(torch.rand(1, 1, 8, 8))


def test_discriminator_logits_any_size():
    d = Discriminator(3, base_channels=8, num_stages=3)
    assert d(torch.rand(2, 3, 32, 32)).shape == (2,)
    assert d(torch.rand(2, 3, 48, 48)).shape == (2,)


def test_sh_regressor_ten_convs_meanpool_fc():
    net = SHRegressor(input_size=32, width=4)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 10
    assert net.fc.out_features == 27
    out = net(torch.rand(2, 4, 64, 64))
    assert out.shape == (2, 3, 9)


def test_level_channels_cap():
    assert level_channels(512, 64, 512) == [64, 128, 256, 512, 512, 512, 512, 512]
