"""Markdown tables and the gather step of an ablation sweep."""

from __future__ import annotations

import json

import pytest

from facerefl.errors import InputError
from facerefl.eval.report import (PAPER_TABLE1, RESULTS_FILE, ablation_markdown, gather,
                                  results_document, table1_markdown)


def _summary(albedo: float, image: float) -> dict:
    sc = {k: {"psnr": albedo, "rmse": 0.1} for k in
          ("albedo", "albedo_linear", "normal", "specular", "light", "albedo_aligned", "light_aligned")}
    return {"count": 3, "ok": 2, "failed": [{"name": "7", "error": "no face found"}],
            "scores": {**sc, "normal_angle_deg": 12.0}, "initial_scores": sc,
            "image": {"psnr_initial": image - 3, "psnr_final": image, "ssim_initial": 0.5,
                      "ssim_final": 0.8}, "seconds_per_example": 4.0}


def test_table1_shows_ours_next_to_the_paper():
    md = table1_markdown(_summary(23.456, 30.0))
    assert "| PSNR ours | 23.46 | 23.46 | 23.46 | 23.46 |" in md
    assert "| PSNR paper | 25.10 | 26.61 | 22.68 | 20.29 |" in md
    assert "| RMSE paper | 0.07 | 0.06 | 0.08 | 0.11 |" in md
    assert "n = 2 of 3" in md and "7: no face found" in md


def test_gather_writes_the_combined_table_in_ablation_order(tmp_path):
    for i, (name, albedo, image) in enumerate((("no_renderer", 20.0, 25.0), ("full", 22.5, 31.0),
                                               ("no_enhancer", 21.0, 29.0))):
        job = tmp_path / f"{i}_{name}"
        job.mkdir()
        doc = results_document(name, _summary(albedo, image), [], {})
        (job / RESULTS_FILE).write_text(json.dumps(doc))
    md_path, json_path = gather(tmp_path)
    md = md_path.read_text()
    rows = [line.split("|")[1].strip() for line in md.splitlines() if line.startswith("| ") and " | 2/3 |" in line]
    assert rows == ["full", "no_renderer", "no_enhancer"]
    assert "image PSNR 6.00 dB, albedo PSNR 2.50 dB" in md and "Not run (or failed to start): no_skip." in md
    runs = json.loads(json_path.read_text())["runs"]
    assert set(runs) == {"full", "no_renderer", "no_enhancer"}
    assert runs["full"]["image"]["psnr_final"] == 31.0


def test_gather_without_results_is_a_user_error(tmp_path):
    with pytest.raises(InputError, match="no results.json"):
        gather(tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        gather(tmp_path / "missing")


def test_ablation_markdown_handles_missing_values():
    s = _summary(20.0, 25.0)
    s["scores"]["light"]["psnr"] = None
    md = ablation_markdown({"full": s})
    assert "| full | 2/3 |" in md and "–" in md
    assert PAPER_TABLE1["psnr"]["albedo"] == 25.10


def test_table1_shows_the_flat_normal_baseline():
    assert "flat normals" not in table1_markdown(_summary(23.0, 30.0))
    md = table1_markdown({**_summary(23.0, 30.0), "flat_normal": {"psnr": 31.234, "rmse": 0.03}})
    assert "| PSNR flat normals (0, 0, 1), baseline | | 31.23 | | |" in md


def test_flat_normal_baseline_scores_a_flat_truth_perfectly():
    import torch

    from facerefl.eval.compare import GroundTruth, flat_normal_score

    n = torch.zeros(1, 3, 32, 32)
    n[:, 2] = 1.0
    gt = GroundTruth(albedo=torch.rand(1, 3, 32, 32), specular=torch.rand(1, 1, 32, 32), normal=n,
                     light=torch.rand(1, 3, 9))
    assert flat_normal_score(gt).rmse == 0.0
    tilted = torch.nn.functional.normalize(n + torch.tensor([0.3, 0.0, 0.0])[None, :, None, None], dim=1)
    assert 0 < flat_normal_score(GroundTruth(gt.albedo, gt.specular, tilted, gt.light)).rmse < 0.2
