"""The one atomic writer: an interrupted run never leaves a half-written file behind.

It lives here, in the lowest layer (numpy-only ``devices``), so that ``devices``, ``export``,
``search_spaces`` and ``hetero`` all write through it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_bytes"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, tree: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` if the block succeeds.

    Missing parent folders are created. On an exception the temporary is removed and ``path`` is
    left as it was.

    Args:
        path: the file (or, with ``tree``, file or folder) to write.
        tree: the block may write a folder (e.g. a Core ML ``.mlpackage``): the temporary path is
            then inside a private temporary folder and does not exist yet, and a folder already at
            ``path`` is replaced (``os.replace`` alone cannot replace a non-empty folder).
            Without ``tree`` the temporary is an empty file with ordinary permissions.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if tree:
        with _tree_path(target) as tmp:
            yield tmp
        return
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    # mkstemp makes the file private (0600); a report or model is an ordinary file (umask applies).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _tree_path(target: Path) -> Iterator[Path]:
    tmp_dir = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    tmp = tmp_dir / target.name
    try:
        yield tmp
        if target.is_dir():
            os.replace(target, tmp_dir / (target.name + ".old"))
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a reader (or a crash) never sees a half-written file."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
