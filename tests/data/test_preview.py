import math

import numpy as np
import torch

from facerefl.data.preview import main, preview_grid, probe_image
from facerefl.data.types import ReflectanceBatch


def test_probe_of_uniform_and_directional_light():
    light = torch.zeros(3, 9)
    light[:, 0] = 2 * math.sqrt(math.pi)  # unit radiance everywhere
    p = probe_image(light, 32)
    disc = p[0] > 0
    assert torch.allclose(p[:, disc], torch.ones(3, int(disc.sum())), atol=1e-5)
    assert p[:, 0, 0].abs().max() == 0  # corner is outside the ball
    up = torch.zeros(3, 9)
    up[:, 0], up[:, 1] = 1.0, 1.0  # brighter from +y
    q = probe_image(up, 32)
    assert q[0, 4, 16] > q[0, 28, 16]  # top of the ball reflects the sky


def test_grid_layout():
    b = ReflectanceBatch(
        texture=torch.rand(2, 4, 16, 16), albedo=torch.rand(2, 3, 16, 16),
        specular=torch.rand(2, 1, 8, 8), normal=torch.rand(2, 3, 8, 8),
        light=torch.rand(2, 3, 9), image=torch.rand(2, 3, 20, 20))
    g = preview_grid(b, 24)
    assert g.shape == (48, 144, 3) and g.dtype == np.uint8


def test_cli_rejects_bad_n(tmp_path, capsys):
    assert main(["--n", "0", "--out", str(tmp_path / "g.png")]) == 2
    assert capsys.readouterr().err.startswith("error: --n")
    assert not (tmp_path / "g.png").exists()
