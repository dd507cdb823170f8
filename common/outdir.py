"""Output directories: one a run replaces whole, or one a run resumes, and only when it is one of ours.

``cmm backtest``, ``cmm paper`` and ``cmm compare`` write into a temporary
directory beside ``--out`` and rename it into place when complete, so a
half-written results directory never exists. Replacing means removing what was
there, so only what we wrote is replaced: a directory holding :data:`MARKER`
(or an empty one: nothing to lose). A file, a directory of the user's, the input
data or the working directory at ``--out`` is refused, with one line, before the
run starts, and again just before the swap in case it appeared meanwhile.

``cmm study`` and ``cmm sweep`` instead keep ``--out`` between runs, so a second
run skips the jobs the first finished (:func:`claim_resumable`): it must be
absent, empty, or a directory the same tool wrote (it holds that tool's marker,
``.cmm-study`` or ``.cmm-sweep``); anything else is refused, with one line,
before any job runs.
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


def _resumable_marker(tool: str) -> str:
    return f".cmm-{tool}"


def _refuse_unless_ours(out_dir: str | os.PathLike, marker: str, kind: str, writer: str, verb: str,
                        field: str) -> None:
    """Raise :class:`DataError` unless ``out_dir`` is absent, an empty directory, or one holding ``marker``:
    the one check behind :func:`check_resumable` and :func:`check_replaceable`."""
    path = os.path.abspath(out_dir)
    refuse = None
    try:
        if os.path.islink(out_dir):
            refuse = f"is a symbolic link, not a {kind}"
        elif not os.path.lexists(path):
            return
        elif not os.path.isdir(path):
            refuse = f"exists and is not a {kind}"
        elif path == os.getcwd():
            refuse = "is the working directory"
        elif os.path.exists(os.path.join(path, marker)):
            return
        elif os.listdir(path):
            refuse = f"is a directory {writer} did not write (no {marker} marker)"
    except OSError as e:
        raise DataError(f"cannot check what is there: {e.strerror or e}", path=str(out_dir), field=field) from None
    if refuse is not None:
        raise DataError(f"{refuse}: refusing to {verb} it; choose another {field}", path=str(out_dir), field=field)


def check_resumable(out_dir: str | os.PathLike, tool: str, field: str = "--out") -> None:
    """Raise :class:`DataError` unless ``out_dir`` is absent, an empty directory, or one ``tool`` ("study",
    "sweep") wrote: what a run of ``tool`` may resume in."""
    _refuse_unless_ours(out_dir, _resumable_marker(tool), f"{tool} directory", f"cmm {tool}", "write into", field)


def claim_resumable(out_dir: str | os.PathLike, tool: str, field: str = "--out") -> None:
    """:func:`check_resumable`, then create ``out_dir`` if needed and mark it as ``tool``'s."""
    check_resumable(out_dir, tool, field)
    try:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, _resumable_marker(tool)), "w") as f:
            f.write(f"cmm {tool} wrote this directory; a {tool} given it as {field} resumes it.\n")
    except OSError as e:
        raise cannot_write(out_dir, e, field) from None


def check_replaceable(out_dir: str | os.PathLike, field: str = "--out") -> None:
    """Raise :class:`DataError` unless ``out_dir`` is absent, an empty directory, or a results directory of ours."""
    _refuse_unless_ours(out_dir, MARKER, "results directory", "cmm", "replace", field)


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
