import pytest
import torch
from lightning_utilities.core.apply_func import apply_to_collection

from facerefl.data.types import ReflectanceBatch, collate_reflectance


def _batch(b=2, h=8, hs=4, with_seed=True):
    return ReflectanceBatch(
        texture=torch.rand(b, 4, h, h),
        albedo=torch.rand(b, 3, h, h),
        specular=torch.rand(b, 1, hs, hs),
        normal=torch.nn.functional.normalize(torch.randn(b, 3, hs, hs), dim=1),
        light=torch.randn(b, 3, 9),
        seed=torch.arange(b, dtype=torch.int64) if with_seed else None,
    )


def test_collate_concatenates_and_drops_partial_optionals():
    a, b = _batch(1), _batch(2, with_seed=False)
    out = collate_reflectance([a, b])
    assert out.batch_size == 3
    assert torch.equal(out.albedo[1:], b.albedo)
    assert out.seed is None
    both = collate_reflectance([a, _batch(1)])
    assert both.seed.dtype == torch.int64 and both.seed.shape == (2,)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="light"):
        ReflectanceBatch(**{**_batch().tensors(), "light": torch.zeros(2, 27)})
    with pytest.raises(ValueError, match="batch size"):
        ReflectanceBatch(**{**_batch().tensors(), "albedo": torch.zeros(3, 3, 8, 8)})
    with pytest.raises(ValueError, match="shapes differ"):
        collate_reflectance([_batch(1, h=8), _batch(1, h=16)])


def test_to_and_lightning_move_keep_int_seed():
    b = _batch()
    d = b.to(torch.float64)
    assert d.albedo.dtype == torch.float64 and d.seed.dtype == torch.int64
    moved = apply_to_collection(b, torch.Tensor, lambda t: t + 0 if t.is_floating_point() else t * 2)
    assert isinstance(moved, ReflectanceBatch)
    assert torch.equal(moved.seed, b.seed * 2)


def test_indexing_keeps_batch_dim():
    b = _batch(3)
    one = b[1]
    assert one.batch_size == 1 and torch.equal(one.light[0], b.light[1])
