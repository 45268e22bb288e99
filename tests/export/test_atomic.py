from __future__ import annotations

import json

import pytest

from facerefl.errors import InputError, OutputExistsError
from facerefl.export.atomic import check_output_dir, prepare_output_dir
from facerefl.fsutil import atomic_write, atomic_write_bytes, atomic_write_json, atomic_write_text


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")
    atomic_write_bytes(target, b"new content")
    assert target.read_bytes() == b"new content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]


def test_failed_write_keeps_old_file_and_removes_temp(tmp_path):
    target = tmp_path / "keep.txt"
    target.write_text("old")

    def boom(tmp):
        tmp.write_text("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, boom)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_atomic_json_is_strict(tmp_path):
    atomic_write_json(tmp_path / "m.json", {"b": 1.5, "a": [1, 2]})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": [1, 2], "b": 1.5}
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "bad.json", {"x": float("nan")})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]


def test_missing_parent_folder_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        atomic_write_bytes(tmp_path / "nope" / "x.bin", b"x")


def test_check_output_dir_creates_nothing(tmp_path):
    assert check_output_dir(tmp_path / "new") == tmp_path / "new"
    assert not (tmp_path / "new").exists()
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(OutputExistsError):
        check_output_dir(tmp_path)


def test_prepare_output_dir(tmp_path):
    out = prepare_output_dir(tmp_path / "run" / "1")
    assert out.is_dir()
    (out / "old.png").write_bytes(b"x")
    with pytest.raises(OutputExistsError, match="overwrite"):
        prepare_output_dir(out)
    assert prepare_output_dir(out, overwrite=True) == out
    assert (out / "old.png").exists()  # nothing deleted up front
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        prepare_output_dir(tmp_path / "file", overwrite=True)


def test_make_parents_creates_the_folders_else_a_missing_folder_is_an_error(tmp_path):
    deep = tmp_path / "a" / "b" / "c.txt"
    with pytest.raises(InputError, match="does not exist"):
        atomic_write_text(deep, "x")
    assert atomic_write_text(deep, "x", make_parents=True).read_text() == "x"
    assert [p.name for p in deep.parent.iterdir()] == ["c.txt"]
