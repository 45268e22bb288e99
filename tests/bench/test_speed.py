from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from bench import speed
from facerefl.tasks.optimize import fit_settings


def test_canvases_hold_the_astronaut_at_their_size(tmp_path):
    path = speed.canvas("portrait_4000x3000", tmp_path)
    img = np.asarray(Image.open(path))
    assert img.shape == (3000, 4000, 3)
    assert (img[:, :500] == 128).all()  # grey margin left of the 3000² astronaut
    assert img[:, 500:3500].std() > 20


@pytest.mark.parametrize("name", sorted(speed.VARIANTS))
def test_every_variant_is_a_valid_config(name):
    s = fit_settings(speed._config(speed._overrides(speed.VARIANTS[name])))
    if name == "paper_150":
        assert s.iterations == 150 and s.enhanced_iterations is None and s.lr_schedule == "constant"
        assert s.enhanced_steps == 150


def test_overrides_are_hydra_syntax():
    assert speed._overrides({"fit.early_stop": True, "iterations": 80}) == ["fit.early_stop=true", "iterations=80"]


def test_plot_of_time_and_memory_against_face_size(tmp_path):
    runs = {name: {"face_pixels": px, "timings": {"total": t}, "peak_rss_mb": m}
            for name, px, t, m in (("a", 2000.0, 3.0, 900.0), ("b", 8000.0, 4.0, 950.0))}
    doc = {"sizes": {"defaults": runs, "paper": runs},
           "photos": {"defaults": {"astronaut": {"face_pixels": 7000.0, "total_s": 5.0, "peak_rss_mb": 990.0}}}}
    out = speed.plot(doc, tmp_path / "speed.png")
    assert Image.open(out).size[0] > 500
    assert speed.plot({}, tmp_path / "none.png") is None
    json.dumps(doc)  # what run() writes
