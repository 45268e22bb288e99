"""Faults during a real fit (slow): SIGTERM, SIGINT, kill -9, two runs into one folder,
and a full disk (the file-size limit, RLIMIT_FSIZE: writes fail with EFBIG, which works
unprivileged where a tiny tmpfs would need root).

What each must leave behind: nothing half-written (no ``.face.partial``, no stray
temporary file), nothing lost (an earlier result stays), one ``error:`` line.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from facerefl.fsutil import sibling
from tests.fit.conftest import tiny_nets, tiny_weights  # noqa: F401  (fixtures)
from tests.tasks.cli_helpers import ROOT, run_process, small_fit_args, tree

pytestmark = pytest.mark.slow


@pytest.fixture
def workdir(tmp_path) -> Path:
    import skimage.data

    Image.fromarray(skimage.data.astronaut()).save(tmp_path / "face.png")
    return tmp_path


def _start(cwd: Path, weights: Path, *extra: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "FACEREFL_ROOT": str(cwd)}
    return subprocess.Popen([sys.executable, str(ROOT / "optimize.py"), "face.png", *small_fit_args(weights), *extra],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    """Wait until ``path`` exists (polling every 2 ms); fail if the run ends first."""
    t0 = time.monotonic()
    while not path.exists():
        assert proc.poll() is None, f"the run ended before {path.name} appeared: {proc.stderr.read()[-1500:]}"
        assert time.monotonic() - t0 < timeout
        time.sleep(0.002)


def _finish(proc: subprocess.Popen) -> tuple[int, str]:
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err


def _one_error(err: str, needle: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("error: ") and needle in lines[-1], err[-1500:]
    assert sum(ln.startswith("error: ") for ln in lines) == 1 and "Traceback" not in err


@pytest.mark.parametrize("sig, code, stage", [
    (signal.SIGTERM, 143, "partial"),  # while the outputs are being written
    (signal.SIGINT, 130, "partial"),
    (signal.SIGTERM, 143, "lock"),     # while fitting, before any output
])
def test_signal_leaves_nothing_half_written(workdir, tiny_weights, sig, code, stage):  # noqa: F811
    out = workdir / "outputs" / "face"
    proc = _start(workdir, tiny_weights)
    _wait_for(sibling(out, stage), proc)
    proc.send_signal(sig)
    rc, err = _finish(proc)
    assert rc == code, err[-1500:]
    _one_error(err, f"interrupted by {signal.Signals(sig).name}")
    assert tree(workdir) == {"face.png"}  # no staging, no lock, no empty outputs/


def test_signal_during_overwrite_keeps_the_earlier_result(workdir, tiny_weights):  # noqa: F811
    out = workdir / "outputs" / "face"
    assert run_process("optimize", ["face.png", *small_fit_args(tiny_weights)], cwd=workdir,
                       env={"FACEREFL_ROOT": str(workdir)}).code == 0
    before = {p.name: p.stat().st_ino for p in out.iterdir()}
    proc = _start(workdir, tiny_weights, "overwrite=true")
    _wait_for(sibling(out, "partial"), proc)
    proc.send_signal(signal.SIGTERM)
    assert _finish(proc)[0] == 143
    assert {p.name: p.stat().st_ino for p in out.iterdir()} == before
    assert {p for p in tree(workdir / "outputs") if p.startswith(".")} == set()


def test_kill_9_leftovers_are_cleaned_by_the_next_run(workdir, tiny_weights):  # noqa: F811
    out = workdir / "outputs" / "face"
    proc = _start(workdir, tiny_weights)
    _wait_for(sibling(out, "partial"), proc)
    proc.kill()
    proc.wait(timeout=60)
    # what kill -9 leaves: the staging folder and the lock file, never a half-written face/
    left = {p for p in tree(workdir / "outputs") if "/" not in p}
    assert left == {".face.partial", ".face.lock"} and not out.exists()
    r = run_process("optimize", ["face.png", *small_fit_args(tiny_weights)], cwd=workdir,
                    env={"FACEREFL_ROOT": str(workdir)})
    assert r.code == 0, r.stderr[-1500:]
    assert {p for p in tree(workdir / "outputs") if "/" not in p} == {"face"}


def test_two_runs_into_one_folder(workdir, tiny_weights):  # noqa: F811
    out = workdir / "outputs" / "face"
    first = _start(workdir, tiny_weights, "iterations=1500")  # long enough to be caught fitting
    _wait_for(sibling(out, "lock"), first)
    second = run_process("optimize", ["face.png", *small_fit_args(tiny_weights), "overwrite=true"], cwd=workdir,
                         env={"FACEREFL_ROOT": str(workdir)})
    assert first.poll() is None, "the first run ended before the second tried"
    assert second.code == 2
    _one_error(second.stderr, "another facerefl run is writing")
    rc, err = _finish(first)
    assert rc == 0, err[-1500:]
    names = {p.name for p in out.iterdir()}
    assert "report.html" in names and not any(n.startswith(".") for n in names)
    assert {p for p in tree(workdir / "outputs") if "/" not in p} == {"face"}


def test_full_disk_is_one_line_and_leaves_nothing(workdir, tiny_weights):  # noqa: F811
    limit = 64 * 1024  # bytes per file: the larger PNGs and the report cannot be written

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    before = tree(workdir)
    proc = _start(workdir, tiny_weights, preexec_fn=small_files)
    rc, err = _finish(proc)
    assert rc == 2, err[-1500:]
    _one_error(err, "file size limit")
    assert tree(workdir) == before
    assert shutil.which("true")  # the limit applied to the child only
