"""Output folders: locking, staging, stale leftovers, long names, same stems, write errors.

These run the real file-system steps of a fit without fitting (fast); the end-to-end
fault tests (signals, kill -9, concurrent runs, a full disk) are in test_faults.py.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from facerefl.errors import InputError
from facerefl.fsutil import LockedError, folder_lock, recover_stale, sibling
from facerefl.tasks.optimize import output_dirs, output_slot, staged_output_dir
from tests.tasks.cli_helpers import ROOT, tree


def _cfg(**over):
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return compose("optimize", overrides=[f"{k}={v}" for k, v in over.items()])


def _publish(path: Path, overwrite: bool = False, fail: BaseException | None = None) -> None:
    """One fit's file-system steps: claim, stage two files, publish (or fail while writing)."""
    with output_slot(path, overwrite), staged_output_dir(path, overwrite) as stage:
        (stage / "metrics.json").write_text("{}")
        if fail is not None:
            raise fail
        (stage / "report.html").write_text("<html></html>")


def test_sibling_names_stay_within_255_bytes(tmp_path):
    for name in ("face", "é" * 127, "n" * 250, "n" * 255):
        for tag in ("partial", "lock", "old"):
            s = sibling(tmp_path / name, tag)
            assert len(os.fsencode(s.name)) <= 255 and s.name.startswith(".") and s.name.endswith(tag)
    assert sibling(tmp_path / ("n" * 250), "lock") != sibling(tmp_path / ("n" * 249 + "m"), "lock")


def test_250_character_output_name_publishes(tmp_path):
    out = tmp_path / ("n" * 250)
    _publish(out)
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "report.html"]
    assert tree(tmp_path) == {out.name, f"{out.name}/metrics.json", f"{out.name}/report.html"}


def test_lock_is_exclusive_and_removed(tmp_path):
    out = tmp_path / "face"
    with folder_lock(out) as lock:
        assert lock.is_file()
        with pytest.raises(LockedError):
            with folder_lock(out):
                pass
    assert not lock.exists()
    with folder_lock(out):  # free again
        pass


def test_a_failed_write_leaves_nothing_and_keeps_the_old_result(tmp_path):
    out = tmp_path / "outputs" / "face"
    with pytest.raises(OSError):
        _publish(out, fail=OSError(errno.ENOSPC, "No space left on device", "albedo.png"))
    assert not (tmp_path / "outputs").exists()  # the parents made for it are gone too
    _publish(out)
    before = (out / "report.html").stat().st_ino
    with pytest.raises(KeyboardInterrupt):
        _publish(out, overwrite=True, fail=KeyboardInterrupt())
    assert (out / "report.html").stat().st_ino == before
    assert tree(tmp_path / "outputs") == {"face", "face/metrics.json", "face/report.html"}


def test_leftovers_of_a_killed_run_are_recovered(tmp_path):
    out = tmp_path / "face"
    # killed inside replace_dir: the old result moved aside, the new one still staged
    old, stage = sibling(out, "old"), sibling(out, "partial")
    old.mkdir()
    (old / "metrics.json").write_text("old")
    stage.mkdir()
    (stage / "half.png").write_bytes(b"x")
    sibling(out, "lock").write_text("12345\n")  # its lock file, held by nobody now
    recover_stale(out)
    assert (out / "metrics.json").read_text() == "old"
    assert not old.exists() and not stage.exists()
    _publish(out, overwrite=True)
    assert tree(tmp_path) == {"face", "face/metrics.json", "face/report.html"}


def test_overwrite_replaces_only_an_earlier_result(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    with pytest.raises(InputError, match="not a facerefl result"):
        _publish(home, overwrite=True)
    assert (home / "thesis.tex").read_text() == "years of work"


def test_same_stem_photos_get_distinct_folders(tmp_path):
    cfg = _cfg(output_root=str(tmp_path / "o"))
    images = [Path("/p/face.png"), Path("/p/face.jpg"), Path("/p/Face.JPG"), Path("/p/other.png")]
    dirs = output_dirs(cfg, images, from_folder=True)
    names = [dirs[str(p)].name for p in images]
    assert names[3] == "other" and len({n.casefold() for n in names}) == 4
    assert names[0] == "face-png" and names[1] == "face-jpg"
    one = output_dirs(_cfg(output_dir=str(tmp_path / "x")), images[:1], from_folder=False)
    assert one[str(images[0])] == tmp_path / "x"
