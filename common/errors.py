"""The one error type every reader raises for bad input.

A reader never lets a raw ``ValueError``, ``KeyError`` or ``zlib.error`` escape:
it names the file, the line (or message number), the field and what it
expected, so the command line can print a single line and exit non-zero.
"""
from __future__ import annotations


class DataError(Exception):
    """Bad input data, located as precisely as the format allows."""

    def __init__(self, reason: str, *, path: str | None = None, line: int | None = None,
                 field: str | None = None):
        self.reason = reason
        self.path = path
        self.line = line
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = []
        if self.path is not None or self.line is not None:
            parts.append((self.path or "<input>") + (f":{self.line}" if self.line is not None else ""))
        if self.field:
            parts.append(self.field)
        return ": ".join(parts + [self.reason])

    def located(self, path: str) -> "DataError":
        """The same error with the file filled in where a lower layer did not know it."""
        if self.path is None:
            self.path = path
        return self


class SkipCounter:
    """Counts bad lines skipped under ``--on-error skip``; raises under ``raise``.

    Readers call :meth:`bad` for every defect that is safe to skip. Under the
    default policy the first one aborts; under ``skip`` they are counted and the
    first few are kept so the report can show where they were.
    """

    KEEP = 5

    def __init__(self, policy: str = "raise"):
        if policy not in ("raise", "skip"):
            raise DataError(f"on_error must be 'raise' or 'skip', got {policy!r}", field="on_error")
        self.policy = policy
        self.count = 0
        self.first: list[str] = []

    def bad(self, error: DataError) -> None:
        if self.policy == "raise":
            raise error
        self.count += 1
        if len(self.first) < self.KEEP:
            self.first.append(str(error))


def cannot_write(path, error: OSError, field: str | None = None) -> DataError:
    """An OSError met while writing ``path`` (read-only or full disk, no such directory) as one located line.

    The OS names the temp file it was writing, or nothing at all (a full disk); the
    user needs the path they gave.
    """
    return DataError(f"cannot write: {error.strerror or error}", path=str(path), field=field)
