"""Write a file completely or not at all: a temp file beside it, fsync, rename.

An OSError on the way (a read-only or full disk, a directory where the file
should go) comes out as :class:`~common.errors.DataError` naming ``path``, so
the command line prints one line instead of a traceback.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from typing import IO, Iterator

from common.errors import cannot_write


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Yield a file object whose contents replace ``path`` only on clean exit.

    On any exception the temp file is removed and ``path`` is left untouched,
    so a reader never sees a half-written file.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    except OSError as e:
        raise cannot_write(path, e) from None
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise cannot_write(path, e) from None
        raise
