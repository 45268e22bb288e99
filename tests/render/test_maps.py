import pytest
import torch

from facerefl.render.maps import KINDS, ReflectanceMaps


def test_face_of_a_batch_is_one_detached_face():
    batch = ReflectanceMaps(*(t.requires_grad_() for t in (torch.rand(2, 3, 8, 8), torch.rand(2, 1, 4, 4),
                                                            torch.rand(2, 3, 4, 4))))
    one = batch.face(1)
    assert batch.batched and not one.batched
    assert torch.equal(one.albedo, batch.albedo[1]) and one.specular.shape == (1, 4, 4)
    assert not any(one.get(k).requires_grad for k in KINDS)
    with pytest.raises(ValueError, match="already"):
        one.face(0)


def test_detach_and_get():
    maps = ReflectanceMaps(*(t.requires_grad_() for t in (torch.rand(1, 3, 4, 4), torch.rand(1, 1, 4, 4),
                                                           torch.rand(1, 3, 4, 4))))
    flat = maps.detach()
    assert all(not flat.get(k).requires_grad and torch.equal(flat.get(k), maps.get(k)) for k in KINDS)
    with pytest.raises(ValueError, match="unknown reflectance kind"):
        maps.get("roughness")


@pytest.mark.parametrize("albedo, specular, normal, match", [
    ((3, 4, 4), (3, 4, 4), (3, 4, 4), "specular"),                # wrong channel count
    ((4, 4), (1, 4, 4), (3, 4, 4), "albedo"),                     # no channel axis
    ((1, 1, 3, 4, 4), (1, 4, 4), (3, 4, 4), "albedo"),            # rank 5
    ((3, 4, 4), (1, 1, 4, 4), (3, 4, 4), "batched alike"),        # ranks differ
    ((2, 3, 4, 4), (2, 1, 4, 4), (1, 3, 4, 4), "batched alike"),  # batch sizes differ
])
def test_bad_shapes_raise_naming_the_shape(albedo, specular, normal, match):
    with pytest.raises(ValueError, match=match):
        ReflectanceMaps(torch.zeros(albedo), torch.zeros(specular), torch.zeros(normal))


def test_not_a_tensor_raises():
    with pytest.raises(ValueError, match="albedo must be .* got ndarray"):
        ReflectanceMaps(torch.zeros(3, 4, 4).numpy(), torch.zeros(1, 4, 4), torch.zeros(3, 4, 4))
