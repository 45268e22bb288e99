from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from facerefl.export.plots import loss_curve_png, save_loss_plot, save_metrics_json


def test_loss_plot_is_a_png(tmp_path):
    losses = [1.0 / (i + 1) for i in range(60)]
    path = save_loss_plot(tmp_path / "loss.png", losses)
    img = Image.open(path)
    assert img.format == "PNG" and img.size == (600, 360)
    arr = np.asarray(img.convert("RGB")).astype(int)
    assert (arr.std(axis=(0, 1)) > 1).all()  # something was drawn
    assert b"matplotlib.org" not in path.read_bytes()


def test_loss_plot_needs_a_finite_value():
    with pytest.raises(ValueError, match="no finite"):
        loss_curve_png([float("nan"), float("inf")])
    assert loss_curve_png([float("nan"), 2.0, 1.0]).startswith(b"\x89PNG")


def test_metrics_json_maps_non_finite_to_null(tmp_path):
    path = save_metrics_json(tmp_path / "metrics.json", {"psnr": 30.5, "bad": float("nan"), "device": "cpu"},
                             {"fit": 1.25}, [3.0, float("nan"), 1.0])
    doc = json.loads(path.read_text())
    assert doc["metrics"] == {"bad": None, "device": "cpu", "psnr": 30.5}
    assert doc["timings_s"] == {"fit": 1.25}
    assert doc["loss"] == {"first": 3.0, "iterations": 3, "last": 1.0, "min": 1.0}
