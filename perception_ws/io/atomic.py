"""Write files and folders so that a reader never sees a partial one: write beside the target, then rename."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

# mkstemp creates 0600 files; give the final file the permissions a plain open() would have.
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_file(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file to write that replaces ``path`` only when the ``with`` block ends without error."""
    target = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
        tmp.chmod(0o666 & ~_UMASK)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """A not-yet-existing folder path to fill; renamed to ``path`` when the ``with`` block succeeds.

    ``path`` itself must not exist (a folder cannot be replaced atomically).
    """
    target = Path(path)
    if target.exists():
        raise FileExistsError(f"{target} exists already; not overwriting it")
    scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        yield scratch / target.name
        os.rename(scratch / target.name, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
