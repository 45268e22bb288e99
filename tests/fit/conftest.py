"""Fixtures for fitting tests: one real photo's geometry and small networks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from facerefl.models.networks import NetworksConfig, ReflectanceNetworks

TINY = {
    "albedo": {"input_size": 32, "latent_dim": 32, "base_channels": 8, "max_channels": 32,
               "enhancer_scale": 2, "enhancer_channels": 8, "enhancer_blocks": 1},
    "specular": {"input_size": 32, "latent_dim": 16, "base_channels": 8, "max_channels": 32,
                 "enhancer_scale": 2, "enhancer_channels": 8, "enhancer_blocks": 1},
    "normal": {"input_size": 32, "latent_dim": 16, "base_channels": 8, "max_channels": 32,
               "enhancer_scale": 2, "enhancer_channels": 8, "enhancer_blocks": 1},
    "light": {"input_size": 32, "width": 8},
}


@pytest.fixture(scope="session")
def tiny_nets() -> ReflectanceNetworks:
    """Small, randomly initialised networks (the loop's behaviour, not trained quality)."""
    torch.manual_seed(0)
    return ReflectanceNetworks(NetworksConfig.from_dict(TINY)).freeze()


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory, tiny_nets) -> Path:
    d = tmp_path_factory.mktemp("weights")
    tiny_nets.save_safetensors(d)
    return d


@pytest.fixture(scope="session")
def astro_geometry():
    """FaceGeometry of skimage's astronaut at a small UV resolution."""
    import skimage.data

    from facerefl.geometry.result import GeometryConfig, build_face_geometry

    return build_face_geometry(skimage.data.astronaut(), GeometryConfig(resolution=128, subdivisions=0, n_dirs=64))
