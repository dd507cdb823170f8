"""A results directory that a run replaces whole, and only when it is one of ours.

``cmm backtest``, ``cmm paper`` and ``cmm compare`` write into a temporary
directory beside ``--out`` and rename it into place when complete, so a
half-written results directory never exists. Replacing means removing what was
there, so only what we wrote is replaced: a directory holding :data:`MARKER`
(or an empty one: nothing to lose). A file, a directory of the user's, the input
data or the working directory at ``--out`` is refused, with one line, before the
run starts, and again just before the swap in case it appeared meanwhile.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Iterator

from common.errors import DataError, cannot_write

MARKER = ".cmm-results"
_MARKER_TEXT = "cmm wrote this results directory; a run given it as --out replaces it whole.\n"


def check_replaceable(out_dir: str | os.PathLike, field: str = "--out") -> None:
    """Raise :class:`DataError` unless ``out_dir`` is absent, an empty directory, or a results directory of ours."""
    path = os.path.abspath(out_dir)
    refuse = None
    try:
        if os.path.islink(out_dir):
            refuse = "is a symbolic link, not a results directory"
        elif not os.path.lexists(path):
            return
        elif not os.path.isdir(path):
            refuse = "exists and is not a results directory"
        elif path == os.getcwd():
            refuse = "is the working directory"
        elif os.path.exists(os.path.join(path, MARKER)):
            return
        elif os.listdir(path):
            refuse = f"is a directory cmm did not write (no {MARKER} marker)"
    except OSError as e:
        raise DataError(f"cannot check what is there: {e.strerror or e}", path=str(out_dir), field=field) from None
    if refuse is not None:
        raise DataError(f"{refuse}: refusing to replace it; choose another {field}", path=str(out_dir), field=field)


@contextlib.contextmanager
def replacing(out_dir: str | os.PathLike, field: str = "--out") -> Iterator[str]:
    """Yield a fresh temporary directory beside ``out_dir``; on clean exit it becomes ``out_dir``, marked ours.

    On any exception the temporary directory is removed and ``out_dir`` is left as it was.
    An OSError (read-only or full disk) comes out as one located :class:`DataError`.
    """
    path = os.path.abspath(out_dir)
    check_replaceable(out_dir, field)
    parent = os.path.dirname(path)
    tmp = None
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix="." + os.path.basename(path) + ".", dir=parent)
        yield tmp
        with open(os.path.join(tmp, MARKER), "w") as f:
            f.write(_MARKER_TEXT)
        check_replaceable(out_dir, field)
        _swap(tmp, path)
        tmp = None
    except OSError as e:
        raise cannot_write(out_dir, e, field) from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _swap(new: str, path: str) -> None:
    """Put directory ``new`` at ``path``; a previous one there is moved aside first, and back if the rename fails."""
    if not os.path.lexists(path):
        os.replace(new, path)
        return
    old = tempfile.mkdtemp(prefix="." + os.path.basename(path) + ".old.", dir=os.path.dirname(path))
    previous = os.path.join(old, "previous")
    os.replace(path, previous)
    try:
        os.replace(new, path)
    except BaseException:
        os.replace(previous, path)
        os.rmdir(old)
        raise
    shutil.rmtree(old)
