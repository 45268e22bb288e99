"""File-system helpers shared by every stage (imports only :mod:`facerefl.errors`).

Every file facerefl writes goes through :func:`atomic_write` (or its bytes, text and JSON
forms): the content is written to a hidden temporary file in the destination folder and
moved over the destination with ``os.replace``, so a reader sees either the old file or
the complete new one, and an interrupted write leaves no stray temporary behind. Folders
of results are replaced whole with :func:`replace_dir` under a :func:`folder_lock`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from facerefl.errors import InputError

__all__ = ["replace_dir", "sibling", "folder_lock", "LockedError", "umask", "publish_mode",
           "remove_stale", "recover_stale", "atomic_write", "atomic_write_bytes", "atomic_write_text",
           "atomic_write_json"]

#: longest file-name component most file systems accept (ext4, xfs, btrfs, tmpfs: bytes)
NAME_MAX = 255


class LockedError(OSError):
    """Another process holds the lock on a folder."""


def sibling(path: Path, tag: str) -> Path:
    """The hidden helper path ``.<name>.<tag>`` next to ``path``, shortened when needed.

    A name near the 255-byte limit leaves no room for the dot and the tag; it is then cut
    (on a character boundary) and an 8-digit hash of the full name keeps it unique, so
    ``sibling(p, "partial")`` is always a valid name for one ``p``.
    """
    path = Path(path)
    name = path.name
    full = f".{name}.{tag}"
    if len(os.fsencode(full)) <= NAME_MAX:
        return path.parent / full
    digest = hashlib.sha1(os.fsencode(name)).hexdigest()[:8]
    room = NAME_MAX - len(os.fsencode(f".-{digest}.{tag}"))
    cut = name
    while len(os.fsencode(cut)) > room:
        cut = cut[:-1]
    return path.parent / f".{cut}-{digest}.{tag}"


def recover_stale(path: Path) -> None:
    """Undo what a killed run left next to the output folder ``path``.

    A run killed inside :func:`replace_dir` may have moved the previous result aside
    (``sibling(path, "old")``) without putting the new one in place: the old result is
    moved back. Then the leftover staging folder and the moved-aside copy are removed.
    Call only while holding :func:`folder_lock` on ``path`` (so they belong to no live run).
    """
    old = sibling(path, "old")
    if old.is_dir() and not path.exists():
        old.rename(path)
    remove_stale(path, "partial", "old")


def remove_stale(path: Path, *tags: str) -> None:
    """Remove the helper folders/files ``sibling(path, tag)`` for each ``tag``."""
    for tag in tags:
        p = sibling(path, tag)
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        elif p.exists() or p.is_symlink():
            p.unlink(missing_ok=True)


@contextlib.contextmanager
def folder_lock(path: Path) -> Iterator[Path]:
    """Hold an exclusive ``fcntl`` lock on the output folder ``path`` (not yet existing is fine).

    The lock file is ``sibling(path, "lock")``; its parent folder must exist. It is removed
    on release. A lock file left by a killed process is not held by anyone and is simply
    taken over (the kernel drops ``flock`` locks when a process dies).

    Raises:
        LockedError: another process holds the lock (no waiting).
    """
    lock = sibling(path, "lock")
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            os.close(fd)
            raise LockedError(errno.EWOULDBLOCK, "locked by another process", str(lock)) from e
        # the holder we waited for may have removed the file: then lock the new one
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield lock
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
        os.close(fd)


def umask() -> int:
    """The process's file-creation mask (read without changing it where the OS allows)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def publish_mode(path: Path, directory: bool = False) -> None:
    """Give ``path`` the mode a plain ``open()``/``mkdir()`` would have (0666/0777 less the
    umask): temporary files and folders are created private (0600/0700)."""
    os.chmod(path, (0o777 if directory else 0o666) & ~umask())


def replace_dir(staged: Path, final: Path) -> Path:
    """Move the complete folder ``staged`` to ``final``, replacing any folder there.

    The old folder is first renamed aside (``sibling(final, "old")``) and removed only
    after the new one is in place, so at no moment is ``final`` half-written; both paths
    must be on the same file system. Returns ``final``.
    """
    staged, final = Path(staged), Path(final)
    old = sibling(final, "old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        final.rename(old)
    staged.rename(final)
    if old.exists():
        shutil.rmtree(old)
    return final


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], make_parents: bool = False) -> Path:
    """Run ``write(tmp_path)`` on a temporary path next to ``path``, then move it into place.

    Use this form for libraries that insist on writing to a file name themselves (OpenEXR,
    safetensors, PIL). On any exception the temporary file is removed and the exception
    propagates; ``path`` is left untouched. The published file gets the mode a plain
    ``open()`` would give it (0666 less the umask).

    Args:
        make_parents: create missing parent folders (else a missing parent is an error).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        InputError: the parent folder does not exist and ``make_parents`` is false.
    """
    path = Path(path)
    parent = path.parent
    if make_parents:
        parent.mkdir(parents=True, exist_ok=True)
    elif not parent.is_dir():
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


def atomic_write_bytes(path: str | os.PathLike, data: bytes, make_parents: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically (flushed to disk before the rename)."""

    def _write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    return atomic_write(path, _write, make_parents)


def atomic_write_text(path: str | os.PathLike, text: str, make_parents: bool = False) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"), make_parents)


def atomic_write_json(path: str | os.PathLike, obj: Any, make_parents: bool = False) -> Path:
    """Write ``obj`` as indented, key-sorted, strict JSON (no NaN/Infinity) atomically.

    Raises:
        ValueError: ``obj`` holds a non-finite float or a type JSON cannot represent.
    """
    text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"
    return atomic_write_text(path, text, make_parents)
