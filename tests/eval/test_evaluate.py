"""evaluate(cfg) end to end with tiny random networks: test-set mode, photo mode, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from facerefl.errors import InputError
from facerefl.tasks.evaluate import evaluate
from tests.eval.conftest import SMALL, compose_eval

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def testset_run(tmp_path_factory, tiny_testset, tiny_eval_weights):
    out = tmp_path_factory.mktemp("eval_out")
    cfg = compose_eval([f"weights={tiny_eval_weights}", f"testset={tiny_testset}", f"output_dir={out}",
                        "n_examples=1", *SMALL])
    return out, evaluate(cfg)


def test_testset_mode_writes_results_report_and_figures(testset_run):
    out, doc = testset_run
    for name in ("results.json", "report.md", "loss_curves.png", "samples.png"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "results.json").read_text())
    assert saved["ablation"] == "full"
    s = saved["summary"]
    assert s["count"] == 1 and s["ok"] == 1, s["failed"]
    for col in ("albedo", "normal", "specular", "light", "albedo_aligned", "light_aligned"):
        assert s["scores"][col]["rmse"] >= 0 and s["scores"][col]["psnr"] is not None
    assert saved["examples"][0]["iterations"] == 2
    assert saved["settings"]["iterations"] == 2
    assert set(s["image"]) == {"psnr_initial", "psnr_final", "ssim_initial", "ssim_final"}
    md = (out / "report.md").read_text()
    assert "| PSNR paper | 25.10 | 26.61 | 22.68 | 20.29 |" in md and "Definitions." in md


def test_worker_processes_give_the_same_results(tmp_path, testset_run, tiny_testset, tiny_eval_weights):
    _, doc = testset_run
    cfg = compose_eval([f"weights={tiny_eval_weights}", f"testset={tiny_testset}", f"output_dir={tmp_path}",
                        "n_examples=1", *SMALL, "workers=2"])
    par = evaluate(cfg)
    assert par["examples"][0]["scores"] == doc["examples"][0]["scores"]
    assert par["summary"]["image"] == doc["summary"]["image"]
    with pytest.raises(InputError, match="workers"):
        evaluate(compose_eval([f"weights={tiny_eval_weights}", f"testset={tiny_testset}",
                               f"output_dir={tmp_path}", "workers=0"]))


def test_ablation_no_renderer_keeps_the_encoder_start(tmp_path, tiny_testset, tiny_eval_weights):
    cfg = compose_eval([f"weights={tiny_eval_weights}", f"testset={tiny_testset}", f"output_dir={tmp_path}",
                        "n_examples=1", *SMALL, "ablation=no_renderer"])
    assert cfg.renderer is False and cfg.ablation_name == "no_renderer"
    doc = evaluate(cfg)
    ex = doc["examples"][0]
    assert ex["iterations"] == 0
    assert ex["image"]["psnr_final"] == pytest.approx(ex["image"]["psnr_initial"])
    assert ex["scores"]["albedo"] == ex["initial_scores"]["albedo"]
    assert not (tmp_path / "loss_curves.png").exists()  # nothing to plot without iterations


def test_ablation_configs_set_what_they_ablate():
    assert compose_eval(["ablation=no_enhancer"]).fit.enhance is False
    assert compose_eval(["ablation=no_skip"]).checkpoint == "cpu_noskip"
    full = compose_eval([])
    assert full.ablation_name == "full" and full.fit.enhance is True and full.iterations == 150
    assert full.fit.refine_iterations == 0  # Table 1 is the paper's method
    assert full.fit.albedo_gauge is True  # ... with the albedo gauge
    assert compose_eval(["ablation=no_gauge"]).fit.albedo_gauge is False
    assert compose_eval(["ablation=refine"]).fit.refine_iterations > 0
    from facerefl.tasks.evaluate import _settings

    fit, _ = _settings(compose_eval(["ablation=no_renderer", "fit.refine_iterations=50", "iterations=9"]))
    assert fit.iterations == 0 and fit.refine_iterations == 0


def test_missing_testset_is_a_user_error(tmp_path, tiny_eval_weights):
    cfg = compose_eval([f"weights={tiny_eval_weights}", f"testset={tmp_path / 'none'}",
                        f"output_dir={tmp_path / 'out'}"])
    with pytest.raises(InputError, match="make_testset"):
        evaluate(cfg)


def test_photo_mode_on_one_photo_and_a_non_image(tmp_path, tiny_testset, tiny_eval_weights):
    from facerefl.data.cache import CachedDataset
    from facerefl.export.images import save_png

    photos = tmp_path / "photos"
    photos.mkdir()
    save_png(photos / "face.png", CachedDataset(tiny_testset)[0].image[0])
    (photos / "notes.txt").write_text("not a photo")       # skipped: not an image file
    (photos / "broken.jpg").write_bytes(b"not a jpeg")      # an image that fails
    out = tmp_path / "out"
    cfg = compose_eval([f"weights={tiny_eval_weights}", f"photos={photos}", f"output_dir={out}", *SMALL])
    res = evaluate(cfg)
    s = res["summary"]
    assert s["count"] == 2 and s["ok"] == 1 and s["success_rate"] == 0.5
    assert s["failed"][0]["name"] == "broken.jpg" and res["skipped"] == ["notes.txt"]
    assert 0 < s["ssim"] <= 1 and s["lpips"] >= 0 and s["psnr"] > 0 and s["seconds_per_photo"] > 0
    for name in ("photos.json", "photos.md", "contact_sheet.png"):
        assert (out / name).is_file(), name
    assert json.loads((out / "photos.json").read_text())["summary"]["ok"] == 1


def test_cli_gather_of_a_missing_folder_exits_2_with_one_line(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "evaluate.py"), f"gather={tmp_path / 'nope'}",
                           f"hydra.run.dir={tmp_path / 'run'}"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: gather folder") and "Traceback" not in proc.stderr


def test_relit_examples_change_only_the_light():
    from facerefl.data.assemble import Sizes
    from facerefl.eval.consistency import relit_examples

    exs = relit_examples(5, 2, Sizes(image=64, texture=32, detail=32), renderer="sh", bake_dirs=16)
    (_, a), (_, b) = exs
    assert torch.equal(a.albedo, b.albedo) and torch.equal(a.vertices, b.vertices)
    assert not torch.allclose(a.light, b.light)
    assert not torch.allclose(a.image, b.image)


def test_consistency_summary_of_identical_and_different_albedos():
    from facerefl.eval.consistency import consistency_summary
    from facerefl.eval.metrics import Score
    from facerefl.eval.synthetic import ExampleResult

    gt = torch.full((1, 3, 32, 32), 0.3)

    class _S:  # the two fields consistency_summary reads
        albedo = Score(30.0, 0.03)
        albedo_aligned = Score(35.0, 0.02)

    same = [ExampleResult(str(i), True, scores=_S(), albedo=gt.clone()) for i in range(3)]
    s = consistency_summary(same, gt)
    assert s["ok"] == 3 and s["pairwise_psnr_min"] == float("inf") and s["texel_std_mean"] == 0.0
    diff = same[:2] + [ExampleResult("x", True, scores=_S(), albedo=gt * 0.5)]
    d = consistency_summary(diff + [ExampleResult("y", False, error="no face")], gt)
    assert d["lightings"] == 4 and d["ok"] == 3
    assert d["pairwise_psnr_min"] < 40 and d["texel_std_mean"] > 0


def test_cli_multirun_default_sweep_folder_resolves(tmp_path):
    """The default sweep folder must resolve before Hydra's runtime config exists."""
    proc = subprocess.run([sys.executable, str(REPO / "evaluate.py"), "-m", "ablation=full",
                           f"testset={tmp_path / 'none'}", "hydra/launcher=basic"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={**__import__("os").environ, "FACEREFL_ROOT": str(tmp_path)})
    assert "HydraConfig was not set" not in proc.stderr
    assert "error: no test set" in proc.stderr
    assert any((tmp_path / "outputs" / "evaluate" / "multirun").iterdir())
