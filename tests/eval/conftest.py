"""Fixtures: a one-example Monte-Carlo-free test set and tiny random networks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from facerefl.models.networks import NetworksConfig, ReflectanceNetworks
from tests.fit.conftest import TINY

CONF = Path(__file__).resolve().parents[2] / "conf"


@pytest.fixture(scope="session")
def tiny_eval_weights(tmp_path_factory) -> Path:
    """Randomly initialised small networks (structure of the outputs, not quality)."""
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("eval_weights")
    ReflectanceNetworks(NetworksConfig.from_dict(TINY)).freeze().save_safetensors(d)
    return d


@pytest.fixture(scope="session")
def tiny_testset(tmp_path_factory) -> Path:
    """One synthetic example with every field (SH renderer: fast), in the test set's format."""
    from facerefl.data.assemble import GeneratorSettings, Sizes
    from facerefl.data.cache import write_cache
    from facerefl.data.make_testset import TEST_SEED

    out = tmp_path_factory.mktemp("testset") / "set"
    settings = GeneratorSettings(sizes=Sizes(image=224, texture=64, detail=32), renderer="sh",
                                 bake_dirs=32)
    write_cache(out, settings, [TEST_SEED], fields=None, half=False)
    return out


def compose_eval(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        return compose(config_name="evaluate", overrides=overrides)


#: Overrides that shrink the evaluation to seconds.
SMALL = ["iterations=2", "geometry.resolution=64", "geometry.subdivisions=0", "geometry.n_dirs=32",
         "figure7.enabled=false", "sheet.size=64", "probe_size=16"]
