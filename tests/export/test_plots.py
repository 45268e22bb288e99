from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from facerefl.export.plots import loss_curve_png, save_loss_plot, save_metrics_json, strict_json


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
    with pytest.raises(ValueError, match="no finite"):
        loss_curve_png({"a": [], "b": [float("nan")]})


def test_several_named_curves_share_one_plot(tmp_path):
    curves = {f"face {i}": [1.0 / (i + k + 1) for k in range(30)] for i in range(3)}
    path = save_loss_plot(tmp_path / "loss_curves.png", {**curves, "failed": []}, "Figure 5", ylabel="MSE")
    one = np.asarray(Image.open(save_loss_plot(tmp_path / "one.png", curves["face 0"])).convert("RGB"))
    many = np.asarray(Image.open(path).convert("RGB"))
    assert many.shape == one.shape and not np.array_equal(many, one)


def test_strict_json_replaces_non_finite_numbers_everywhere():
    doc = {"a": [math.inf, 1.0, 2], "b": {"c": math.nan, "d": "cpu", "e": None, "f": True},
           "g": (np.float32(0.5), np.int64(3), np.float64("nan")), "h": torch.tensor(float("-inf")),
           "i": torch.tensor(1.5)}
    out = strict_json(doc)
    assert out == {"a": [None, 1.0, 2], "b": {"c": None, "d": "cpu", "e": None, "f": True},
                   "g": [0.5, 3, None], "h": None, "i": 1.5}
    assert type(out["g"][0]) is float and type(out["g"][1]) is int and out["b"]["f"] is True
    json.dumps(out, allow_nan=False)


def test_metrics_json_maps_non_finite_to_null(tmp_path):
    path = save_metrics_json(tmp_path / "metrics.json", {"psnr": 30.5, "bad": float("nan"), "device": "cpu"},
                             {"fit": 1.25}, [3.0, float("nan"), 1.0])
    doc = json.loads(path.read_text())
    assert doc["metrics"] == {"bad": None, "device": "cpu", "psnr": 30.5}
    assert doc["timings_s"] == {"fit": 1.25}
    assert doc["loss"] == {"first": 3.0, "iterations": 3, "last": 1.0, "min": 1.0}
