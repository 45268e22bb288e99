"""Output-folder preparation: refuse to reuse a non-empty folder unless asked.

The files themselves are written atomically by :mod:`facerefl.fsutil`
(:func:`~facerefl.fsutil.atomic_write` and its bytes, text and JSON forms).
"""

from __future__ import annotations

import os
from pathlib import Path

from facerefl.errors import InputError, OutputExistsError


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
