"""Photos with odd names fit, through ``image=`` and as a plain argument, and their outputs
open as meant (umask modes, colour tags, OBJ normal map, a valid glb, the records)."""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf
from PIL import Image

from facerefl.export.images import png_chunks
from tests.export.test_open_everywhere import assert_valid_glb
from tests.fit.conftest import tiny_nets, tiny_weights  # noqa: F401  (fixtures)
from tests.tasks.cli_helpers import run_inprocess, run_process, small_fit_args, tree

ODD = "IMG (1) [a],b;c&d|e#f=g'h\"i $ ${x} é 照片.png"


@pytest.fixture(scope="module")
def face_png(tmp_path_factory) -> Path:
    import skimage.data

    p = tmp_path_factory.mktemp("face") / "face.png"
    Image.fromarray(skimage.data.astronaut()).save(p)
    return p


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory, face_png, tiny_weights):  # noqa: F811
    """One folder run: an odd name and two photos sharing the stem ``face``."""
    root = tmp_path_factory.mktemp("odd run")
    photos = root / "my photos (2024)"
    photos.mkdir()
    shutil.copy(face_png, photos / ODD)
    shutil.copy(face_png, photos / "face.png")
    Image.open(face_png).convert("RGB").save(photos / "face.jpg", quality=95)
    return root, photos


def test_folder_of_odd_names_fits_every_photo(folder_run, tiny_weights, capfd, monkeypatch):  # noqa: F811
    root, photos = folder_run
    monkeypatch.chdir(root)
    old = os.umask(0o022)
    try:
        r = run_inprocess("optimize", [f"image={photos}", f"output_dir={root / 'out'}", *small_fit_args(tiny_weights)],
                          capfd)
    finally:
        os.umask(old)
    assert r.code == 0, r.stderr[-2000:]
    out = root / "out"
    assert sorted(p.name for p in out.iterdir()) == sorted([Path(ODD).stem, "face-jpg", "face-png"])
    odd = out / Path(ODD).stem
    # files honour the umask (tempfile's 0600 is not what a user gets)
    for p in odd.iterdir():
        assert p.stat().st_mode & 0o777 == 0o644, p.name
    assert odd.stat().st_mode & 0o777 == 0o755
    # the records: resolved settings and versions, read back literally
    doc = json.loads((odd / "metrics.json").read_text())
    assert doc["config"]["image"] == str(photos) and doc["config"]["iterations"] == 2
    assert doc["versions"]["torch"] and doc["versions"]["python"]
    snap = OmegaConf.load(odd / "config.yaml")
    assert snap.image == str(photos) and snap.fit.roughness == doc["config"]["fit"]["roughness"]
    assert yaml.safe_load((odd / "config.yaml").read_text())["output_dir"] == str(root / "out")
    # colour tags, OBJ normal map, report table, a glb the Khronos validator accepts
    assert struct.unpack(">I", png_chunks((odd / "albedo_linear16.png").read_bytes())[b"gAMA"])[0] == 100000
    assert "map_Bump -bm 1 normal.png" in (odd / "face.mtl").read_text().splitlines()
    report = (odd / "report.html").read_text()
    assert "state kept" in report and "psnr_final_pixels" not in report
    assert_valid_glb(odd / "face.glb")
    assert not [p for p in out.rglob(".*")]  # no staging or lock leftovers


def test_plain_argument_with_odd_name_fits(tmp_path, face_png, tiny_weights):  # noqa: F811
    name = "dollar${x} (2) é.png"
    shutil.copy(face_png, tmp_path / name)
    r = run_process("optimize", [name, *small_fit_args(tiny_weights)], cwd=tmp_path,
                    env={"FACEREFL_ROOT": str(tmp_path)})
    assert r.code == 0, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    out = tmp_path / "outputs" / Path(name).stem
    assert (out / "report.html").is_file() and (out / "face.glb").is_file()
    assert json.loads((out / "metrics.json").read_text())["config"]["image"] == name
    assert {p for p in tree(tmp_path) if "/" not in p} == {name, "outputs"}
