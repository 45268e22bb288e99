"""A non-editable install runs the demo fit from another folder (docs/install.md).

The checkout's files are copied, built into a wheel and installed (``--no-deps``) into a
fresh venv that sees this environment's dependencies through a ``.pth`` line (no network:
the pinned dependencies are the ones already installed). From an empty folder,
``facerefl-optimize`` then fits the sample photo shipped in the package with the shipped
weights and configs; nothing may come from the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str | Path, cwd: Path | None = None, env: dict | None = None) -> str:
    r = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"{args} exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


def _copy_checkout(dest: Path) -> None:
    """The files git tracks or would track, as they are in the working tree."""
    listed = _run("git", "-C", REPO, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for name in filter(None, listed.split("\0")):
        src = REPO / name
        if src.is_symlink() or src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name, follow_symlinks=False)


def test_wheel_install_fits_the_sample_from_another_folder(tmp_path):
    src, wheels, venv, elsewhere = (tmp_path / n for n in ("src", "wheels", "venv", "elsewhere"))
    _copy_checkout(src)
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", src, "-w", wheels)
    (wheel,) = wheels.glob("facerefl-*.whl")
    _run(sys.executable, "-m", "venv", "--system-site-packages", venv)
    python = venv / "bin" / "python"
    purelib = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    # this environment's packages after the venv's own: the dependencies, not the editable facerefl
    (purelib / "project-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel)

    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": ""}
    where = _run(python, "-c", "import facerefl.resources as r; print(r.__file__); print(r.SAMPLES_DIR / 'astronaut.png')",
                 cwd=elsewhere, env=env).splitlines()
    assert Path(where[0]).is_relative_to(purelib), where
    _run(venv / "bin" / "facerefl-optimize", where[1], "iterations=10", "progress=false", cwd=elsewhere, env=env)

    out = elsewhere / "outputs" / "astronaut"
    record = (out / "metrics.json").read_text()
    metrics = json.loads(record)["metrics"]
    assert (out / "albedo.png").is_file() and (out / "face.glb").is_file() and (out / "report.html").is_file()
    assert metrics["psnr_final"] > metrics["psnr_initial"] + 5
    assert str(REPO) not in record + (out / "config.yaml").read_text()
