"""File-system helpers shared by every stage (no project imports)."""

from __future__ import annotations

import shutil
from pathlib import Path

__all__ = ["replace_dir"]


def replace_dir(staged: Path, final: Path) -> Path:
    """Move the complete folder ``staged`` to ``final``, replacing any folder there.

    The old folder is first renamed aside (``.<name>.old`` next to it) and removed only
    after the new one is in place, so at no moment is ``final`` half-written; both paths
    must be on the same file system. Returns ``final``.
    """
    staged, final = Path(staged), Path(final)
    old = final.parent / f".{final.name}.old"
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        final.rename(old)
    staged.rename(final)
    if old.exists():
        shutil.rmtree(old)
    return final
