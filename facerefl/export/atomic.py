"""Atomic file writes and output-folder preparation.

Every file facerefl writes goes through :func:`atomic_write`: the content is written to a
hidden temporary file in the destination folder and moved over the destination with
``os.replace``, so a reader sees either the old file or the complete new one, never a
partial file, and an interrupted write leaves no stray temporary behind. Published files
get the mode a plain ``open()`` would give them (0666 less the umask).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from facerefl.errors import InputError, OutputExistsError
from facerefl.fsutil import publish_mode


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Run ``write(tmp_path)`` on a temporary path next to ``path``, then move it into place.

    Use this form for libraries that insist on writing to a file name themselves (OpenEXR).
    The parent folder must exist. On any exception the temporary file is removed and the
    exception propagates; ``path`` is left untouched.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    parent = path.parent
    if not parent.is_dir():
        raise InputError(f"cannot write {path}: folder {parent} does not exist; create it first")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name[:64]}.", suffix=".tmp", dir=parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        publish_mode(tmp)  # mkstemp creates 0600; published files honour the umask
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder + ``os.replace``)."""

    def _write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    return atomic_write(path, _write)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented, key-sorted, strict JSON (no NaN/Infinity) atomically.

    Raises:
        ValueError: ``obj`` holds a non-finite float or a type JSON cannot represent.
    """
    text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"
    return atomic_write_text(path, text)


def check_output_dir(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Refuse, before any work is done, to reuse a non-empty folder unless ``overwrite``.

    Creates nothing; :func:`prepare_output_dir` checks and then creates the folder.

    Raises:
        OutputExistsError: ``path`` exists, is not empty and ``overwrite`` is false.
        InputError: ``path`` exists and is not a folder.
    """
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise InputError(f"output path {path} exists and is not a folder; choose another path")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise OutputExistsError(
            f"output folder {path} already exists and is not empty; "
            "pass overwrite=true to replace its files, or choose another folder"
        )
    return path


def prepare_output_dir(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Create the output folder ``path``; refuse to reuse a non-empty one unless ``overwrite``.

    With ``overwrite=True`` existing files are kept and replaced one by one as the new ones
    are written (nothing is deleted up front, so a failed run never loses the old results).

    Raises:
        OutputExistsError: ``path`` exists, is not empty and ``overwrite`` is false.
        InputError: ``path`` exists and is not a folder, or cannot be created.
    """
    path = check_output_dir(path, overwrite)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create output folder {path}: {e.strerror}") from e
    return path
