"""optimize(cfg) on real photos with small networks, and the CLI's error handling."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from PIL import Image

from facerefl.tasks.optimize import optimize
from tests.fit.conftest import tiny_nets, tiny_weights  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[2]


def _cfg(tmp_path: Path, weights: Path, **over):
    base = {
        "weights": str(weights), "iterations": 2, "progress": False,
        "fit.refine_iterations": 3, "fit.refine_size": 64,
        "geometry.resolution": 64, "geometry.subdivisions": 0, "geometry.n_dirs": 32,
        "export.environments": "[apartment]", "export.exr": False,
        "output_root": str(tmp_path / "outputs"),
    }
    base.update(over)
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return compose("optimize", overrides=[f"{k}={v}" for k, v in base.items()])


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    import matplotlib.cbook as cbook
    import skimage.data

    d = tmp_path_factory.mktemp("photos")
    Image.fromarray(skimage.data.astronaut()).save(d / "astronaut.png")
    Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).save(d / "grace.jpg")
    Image.fromarray(skimage.data.chelsea()).save(d / "cat.jpg")
    (d / "notes.txt").write_text("not an image")
    return d


def test_single_photo_writes_every_output(tmp_path, tiny_weights, photos):  # noqa: F811
    cfg = _cfg(tmp_path, tiny_weights, image=photos / "astronaut.png")
    out = optimize(cfg)
    assert out["failed"] == 0
    d = tmp_path / "outputs" / "astronaut"
    for name in ("albedo.png", "specular.png", "normal.png", "light.json", "light_probe.png",
                 "reconstruction.png", "side_by_side.png", "relit_apartment.png", "face.glb",
                 "face.obj", "face.mtl", "loss.png", "metrics.json", "report.html"):
        assert (d / name).is_file(), name
    metrics = json.loads((d / "metrics.json").read_text())
    flat = json.dumps(metrics)
    for key in ("psnr_initial", "psnr_final", "ssim_final", "geometry", "optimization", "writing"):
        assert key in flat, key
    assert not any(p.name.startswith(".") for p in d.parent.iterdir())  # no staging leftovers
    # A second run refuses to overwrite, and says how to.
    again = optimize(cfg)
    assert again["failed"] == 1 and "overwrite=true" in again["rows"][0].error
    assert optimize(_cfg(tmp_path, tiny_weights, image=photos / "astronaut.png", overwrite=True))["failed"] == 0


def test_folder_reports_failures_and_goes_on(tmp_path, tiny_weights, photos):  # noqa: F811
    cfg = _cfg(tmp_path, tiny_weights, image=photos, iterations=1, output_dir=tmp_path / "batch")
    out = optimize(cfg)
    rows = {Path(r.image).name: r for r in out["rows"]}
    assert out["failed"] == 2 and out["folder"]
    assert rows["astronaut.png"].ok and rows["grace.jpg"].ok
    assert "face" in rows["cat.jpg"].error.lower()
    assert not rows["notes.txt"].ok and "\n" not in rows["notes.txt"].error
    assert "facerefl: grace.jpg" in (tmp_path / "batch" / "grace" / "report.html").read_text()
    assert not (tmp_path / "batch" / "cat").exists()


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "optimize.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("args, needle", [
    (("image=/nonexistent/photo.jpg",), "does not exist"),
    ((), "no input"),
])
def test_cli_bad_input_one_line_exit_2(tmp_path, args, needle):
    r = _cli(*args, cwd=tmp_path)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0]
    assert "Traceback" not in r.stderr + r.stdout


def test_cli_missing_weights_and_no_face(tmp_path, photos, tiny_weights):  # noqa: F811
    r = _cli(f"image={photos / 'astronaut.png'}", f"weights={tmp_path / 'none'}", cwd=tmp_path)
    assert r.returncode == 2 and "config.json" in r.stderr and "Traceback" not in r.stderr
    r = _cli(f"image={photos / 'cat.jpg'}", f"weights={tiny_weights}", "progress=false", cwd=tmp_path)
    assert r.returncode == 2 and "face" in r.stderr.lower() and "Traceback" not in r.stderr
    assert not (tmp_path / "outputs" / "cat").exists()


def test_cli_wandb_offline_run_logs_the_fit(tmp_path, photos, tiny_weights):  # noqa: F811
    r = _cli(f"image={photos / 'astronaut.png'}", f"weights={tiny_weights}", "logger=wandb",
             "iterations=2", "fit.refine_iterations=1", "fit.refine_size=64", "geometry.resolution=64",
             "export.environments=[]", "export.exr=false", "progress=false", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-500:]
    runs = list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1 and runs[0].stat().st_size > 0
    assert (tmp_path / "outputs" / "astronaut" / "report.html").is_file()


def test_config_turns_the_albedo_gauge_on_and_a_sweep_can_ablate_it(tmp_path, tiny_weights):  # noqa: F811
    from facerefl.tasks.optimize import fit_settings

    assert fit_settings(_cfg(tmp_path, tiny_weights)).albedo_gauge is True
    assert fit_settings(_cfg(tmp_path, tiny_weights, **{"fit.albedo_gauge": "false"})).albedo_gauge is False
