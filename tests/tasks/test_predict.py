"""The scale-out path: Lightning's predict loop fits a folder, in one process and in two."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image

from facerefl.errors import InputError
from facerefl.resources import CONF_DIR
from facerefl.tasks.optimize import FitJob, optimize, output_dirs
from facerefl.tasks.predict import predict_photos
from tests.fit.conftest import tiny_nets, tiny_weights  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[2]
#: the smallest settings that still fit a face: two steps, 64² maps, no delighting
TINY = ["iterations=2", "progress=false", "geometry.resolution=64", "geometry.subdivisions=0",
        "geometry.n_dirs=32", "fit.delight.enabled=false", "export.environments=[]", "export.exr=false"]


@pytest.fixture(scope="module")
def two_photos(tmp_path_factory):
    import matplotlib.cbook as cbook
    import skimage.data

    d = tmp_path_factory.mktemp("two")
    Image.fromarray(skimage.data.astronaut()).save(d / "astronaut.png")
    Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).save(d / "grace.jpg")
    return d


def _cfg(tmp_path: Path, weights: Path, photos: Path, *over: str):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("optimize", overrides=[*TINY, f"weights={weights}", f"image={photos}",
                                              f"output_dir={tmp_path / 'out'}", *over])


def test_predict_step_in_process_returns_rows_in_input_order(tmp_path, tiny_weights, two_photos):  # noqa: F811
    cfg = _cfg(tmp_path, tiny_weights, two_photos, "distributed.enabled=true")
    images = sorted(two_photos.iterdir(), reverse=True)  # grace before astronaut
    rows = predict_photos(cfg.distributed, images, FitJob(cfg, output_dirs(cfg, images, True)))
    assert [Path(r["image"]).name for r in rows] == ["grace.jpg", "astronaut.png"]
    assert all(r["ok"] for r in rows), rows
    assert (tmp_path / "out" / "grace" / "metrics.json").is_file()


def test_a_distributed_optimize_run_gives_the_same_rows_as_the_local_loop(tmp_path, tiny_weights, two_photos):  # noqa: F811
    local = optimize(_cfg(tmp_path / "local", tiny_weights, two_photos))
    spread = optimize(_cfg(tmp_path / "spread", tiny_weights, two_photos, "distributed.enabled=true"))
    assert [r.image for r in spread["rows"]] == [r.image for r in local["rows"]]
    assert [r.ok for r in spread["rows"]] == [True, True]


def test_the_job_must_be_set_up_first(tmp_path, tiny_weights, two_photos):  # noqa: F811
    cfg = _cfg(tmp_path, tiny_weights, two_photos)
    with pytest.raises(RuntimeError, match="setup"):
        FitJob(cfg, {})(str(two_photos / "grace.jpg"))
    job = FitJob(cfg, {})
    job.setup(torch.device("cpu"))
    assert next(job.nets.parameters()).device.type == "cpu"


def test_spawning_strategies_are_refused_before_any_work(tmp_path, tiny_weights, two_photos):  # noqa: F811
    cfg = _cfg(tmp_path, tiny_weights, two_photos, "distributed.enabled=true", "distributed.devices=2",
               "distributed.strategy=ddp_spawn")
    with pytest.raises(InputError, match="ddp_spawn"):
        optimize(cfg)
    assert not (tmp_path / "out").exists()


def test_two_cpu_processes_share_a_folder(tmp_path, tiny_weights, two_photos):  # noqa: F811
    """``optimize.py`` with ``distributed.devices=2 strategy=ddp`` on the CPU (gloo): Lightning
    starts a second process running the same command; each fits its share of the folder,
    the rows are gathered, and every photo is fitted exactly once."""
    out = tmp_path / "out"
    r = subprocess.run(
        [sys.executable, str(ROOT / "optimize.py"), *TINY, f"weights={tiny_weights}", f"image={two_photos}",
         f"output_dir={out}", "distributed.enabled=true", "distributed.accelerator=cpu",
         "distributed.devices=2", "distributed.strategy=ddp"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-2000:]
    for stem in ("astronaut", "grace"):
        metrics = json.loads((out / stem / "metrics.json").read_text())
        assert metrics["metrics"]["iterations"] == 2
    # both ranks print the gathered summary: each names both photos
    assert r.stdout.count("astronaut.png") >= 2 and r.stdout.count("grace.jpg") >= 2, r.stdout[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["astronaut", "grace"]
