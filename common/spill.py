"""Rows set aside on disk until read back whole: what keeps a long paper session's memory flat.

A paper trader runs for as long as its feed does. Rows it has finished with but must still hand over
at some point (the live engine's tick log, read at the end for the results; market rows a strategy has
not asked for yet) go to an unnamed temporary file instead of memory, appended in chunks as they are
set aside, and come back in the order they went in. The file has no name (the operating system
deletes it when it is closed or the process ends), lives in the system's temporary directory
(``TMPDIR``), and holds raw rows of one dtype: reading it back gives the same bytes that went in.
"""
from __future__ import annotations

import tempfile

import numpy as np


class Spill:
    """An append-only file of ``dtype`` rows: :meth:`append` chunks, :meth:`read` or :meth:`take` them all."""

    def __init__(self, dtype: np.dtype):
        self.dtype = np.dtype(dtype)
        self.rows = 0
        self._file = None                    # opened at the first row: most sessions never spill

    def append(self, rows: np.ndarray) -> None:
        if len(rows) == 0:
            return
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="cmm-spill-")
        self._file.seek(0, 2)
        self._file.write(np.ascontiguousarray(rows, dtype=self.dtype).tobytes())
        self.rows += len(rows)

    def read(self) -> np.ndarray:
        """Every row appended so far, in order (a new, writable array)."""
        out = np.empty(self.rows, dtype=self.dtype)
        if self.rows:
            self._file.seek(0)
            if self._file.readinto(out.view(np.uint8)) != out.nbytes:
                raise OSError("a spill file came back short")
        return out

    def chunks(self, rows: int):
        """Every row appended so far, in order, at most ``rows`` at a time (each a new array): how a
        file too big for memory is read back."""
        done = 0
        while done < self.rows:
            take = min(rows, self.rows - done)
            out = np.empty(take, dtype=self.dtype)
            self._file.seek(done * self.dtype.itemsize)
            if self._file.readinto(out.view(np.uint8)) != out.nbytes:
                raise OSError("a spill file came back short")
            done += take
            yield out

    def take(self) -> np.ndarray:
        """Every row appended so far, which are then forgotten (the file starts again empty)."""
        out = self.read()
        if self.rows:
            self._file.seek(0)
            self._file.truncate()
            self.rows = 0
        return out

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self.rows = 0
