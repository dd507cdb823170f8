"""A jitted parser for numeric CSV: exact, fast, and precise about what is wrong.

``np.loadtxt`` is slow, rounds nanosecond timestamps through float64 and says
little about bad input. This parser reads raw bytes once and fills typed
columns:

- ``FLOAT``: a decimal number (optional sign, fraction and exponent);
- ``INT``: an integer, exactly, into int64;
- ``SECONDS_NS``: decimal seconds with up to 9 fraction digits, exactly, as int64 nanoseconds;
- ``SKIP``: any text, not read (a vendor's exchange or symbol column);
- ``WORD``: one of a small table of words (ASCII case ignored), its code into the int column;
- ``OPTIONAL_FLOAT``: a decimal number, or an empty field read as NaN (a level a snapshot lacks).

Every error carries the 1-based line, the 0-based column and a code, so callers
can say "file:line: column: expected ...". In skip mode bad lines are counted
and left out instead of stopping the parse. Blank lines and, when asked, lines
starting with ``#`` are ignored.

A file is parsed a block of whole lines at a time (:func:`parse_blocks`), each
block's arrays sized by the rows it can hold, so memory follows the rows a
file has, not its size: blank lines cost nothing.
"""
from __future__ import annotations

from typing import Iterable

import numba as nb
import numpy as np

from common.errors import DataError, SkipCounter

FLOAT, INT, SECONDS_NS, SKIP, WORD, OPTIONAL_FLOAT = 0, 1, 2, 3, 4, 5

OK = 0
E_NUMBER = 1       # a field that is not a number of the column's kind
E_FEW_FIELDS = 2
E_MANY_FIELDS = 3
E_EMPTY = 4
E_OVERFLOW = 5
E_PRECISION = 6    # more than 9 fraction digits in a SECONDS_NS column
E_WORD = 7         # a WORD field that is none of the table's words

ERROR_TEXT = {
    E_NUMBER: "expected a number",
    E_FEW_FIELDS: "too few fields",
    E_MANY_FIELDS: "too many fields",
    E_EMPTY: "empty field",
    E_OVERFLOW: "number too large",
    E_PRECISION: "more than 9 decimal places (nanoseconds)",
    E_WORD: "not one of the expected words",
}
KIND_TEXT = {FLOAT: "a decimal number", INT: "an integer", SECONDS_NS: "decimal seconds",
             OPTIONAL_FLOAT: "a decimal number or nothing"}

_POW10 = np.array([10.0 ** i for i in range(23)])
_MAX_DIGITS = 18


def name_table(names: dict[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Names as a padded byte matrix, their lengths and codes, for matching inside jitted code."""
    width = max([len(n) for n in names] + [1])
    table = np.zeros((len(names), width), dtype=np.uint8)
    for i, name in enumerate(names):
        table[i, :len(name)] = np.frombuffer(name.encode(), dtype=np.uint8)
    return (table, np.array([len(n) for n in names], dtype=np.int64),
            np.array(list(names.values()), dtype=np.int64))


NO_WORDS = name_table({})


@nb.njit(cache=True)
def match_name(buf, start, end, table, lengths, codes):
    """The code of the name buf[start:end] equals (ASCII case ignored), or -1."""
    n = end - start
    for i in range(table.shape[0]):
        if lengths[i] != n:
            continue
        same = True
        for j in range(n):
            c = buf[start + j]
            if 65 <= c <= 90:
                c += 32
            if c != table[i, j]:
                same = False
                break
        if same:
            return codes[i]
    return -1


@nb.njit(cache=True)
def _trimmed(buf, start, end):
    while start < end and (buf[start] == 32 or buf[start] == 9):
        start += 1
    while end > start and (buf[end - 1] == 32 or buf[end - 1] == 9 or buf[end - 1] == 13):
        end -= 1
    return start, end


@nb.njit(cache=True)
def _parse_field(buf, start, end, kind, pow10):
    """Parse buf[start:end] -> (error, float value, int value)."""
    while start < end and (buf[start] == 32 or buf[start] == 9):
        start += 1
    while end > start and (buf[end - 1] == 32 or buf[end - 1] == 9 or buf[end - 1] == 13):
        end -= 1
    if start == end:
        return E_EMPTY, 0.0, 0
    i = start
    neg = False
    if buf[i] == 45 or buf[i] == 43:  # - +
        neg = buf[i] == 45
        i += 1
    mant = 0
    ndig = 0
    exp10 = 0
    frac_digits = 0
    seen_digit = False
    while i < end and 48 <= buf[i] <= 57:
        seen_digit = True
        d = buf[i] - 48
        if kind != FLOAT:
            # Integers and nanoseconds are exact: all of int64, and no further.
            if mant > (9223372036854775807 - d) // 10:
                return E_OVERFLOW, 0.0, 0
            mant = mant * 10 + d
        elif ndig < _MAX_DIGITS:
            mant = mant * 10 + d
            if mant != 0:
                ndig += 1
        else:
            exp10 += 1
        i += 1
    if i < end and buf[i] == 46:  # .
        if kind == INT:
            return E_NUMBER, 0.0, 0
        i += 1
        while i < end and 48 <= buf[i] <= 57:
            seen_digit = True
            frac_digits += 1
            if kind == SECONDS_NS:
                if frac_digits > 9:
                    return E_PRECISION, 0.0, 0
                if mant > (9223372036854775807 - (buf[i] - 48)) // 10:
                    return E_OVERFLOW, 0.0, 0
                mant = mant * 10 + (buf[i] - 48)
            elif ndig < _MAX_DIGITS:
                mant = mant * 10 + (buf[i] - 48)
                if mant != 0:
                    ndig += 1
                exp10 -= 1
            i += 1
    if not seen_digit:
        return E_NUMBER, 0.0, 0
    if i < end and (buf[i] == 101 or buf[i] == 69):  # e E
        if kind != FLOAT:
            return E_NUMBER, 0.0, 0
        i += 1
        eneg = False
        if i < end and (buf[i] == 45 or buf[i] == 43):
            eneg = buf[i] == 45
            i += 1
        e = 0
        edig = 0
        while i < end and 48 <= buf[i] <= 57:
            if e < 10000:
                e = e * 10 + (buf[i] - 48)
            edig += 1
            i += 1
        if edig == 0:
            return E_NUMBER, 0.0, 0
        exp10 += -e if eneg else e
    if i != end:
        return E_NUMBER, 0.0, 0
    if kind == INT:
        return OK, 0.0, -mant if neg else mant
    if kind == SECONDS_NS:
        scale = 9 - frac_digits
        if mant > 9223372036854775807 // 10 ** scale:
            return E_OVERFLOW, 0.0, 0
        ns = mant * 10 ** scale
        return OK, 0.0, -ns if neg else ns
    if exp10 == 0:
        v = float(mant)
    elif 0 < exp10 <= 22:
        v = float(mant) * pow10[exp10]
    elif -22 <= exp10 < 0:
        v = float(mant) / pow10[-exp10]
    else:
        v = float(mant) * 10.0 ** exp10
    if v == np.inf:
        return E_OVERFLOW, 0.0, 0
    return OK, -v if neg else v, 0


@nb.njit(cache=True, inline="always")
def line_at(buf, pos):
    """(end of the line's content without ``\\r``, start of the next line) for the line starting at ``pos``."""
    n = buf.shape[0]
    eol = pos
    while eol < n and buf[eol] != 10:
        eol += 1
    end = eol
    if end > pos and buf[end - 1] == 13:
        end -= 1
    return end, eol + 1


@nb.njit(cache=True)
def _parse(buf, kinds, delim, line0, skip_lines, comments, skip_bad, out_f, out_i, out_line, bad, pow10,
           words, word_len, word_code):
    """Parse the rows of ``buf``, whose first line is line ``line0 + 1`` of its file."""
    ncol = kinds.shape[0]
    n = buf.shape[0]
    row = 0
    nbad = 0
    line = line0
    pos = 0
    first_err = OK
    first_line = 0
    first_col = 0
    while pos < n:
        line += 1
        eol = pos
        while eol < n and buf[eol] != 10:
            eol += 1
        next_pos = eol + 1
        content_end = eol
        if content_end > pos and buf[content_end - 1] == 13:
            content_end -= 1
        blank = True
        for k in range(pos, content_end):
            if buf[k] != 32 and buf[k] != 9:
                blank = False
                break
        if line <= skip_lines or blank or (comments and buf[pos] == 35):
            pos = next_pos
            continue
        err = OK
        col = 0
        fstart = pos
        k = pos
        while True:
            if k == content_end or buf[k] == delim:
                if col >= ncol:
                    err = E_MANY_FIELDS
                    break
                kind = kinds[col]
                if kind == WORD:
                    a, b = _trimmed(buf, fstart, k)
                    code = match_name(buf, a, b, words, word_len, word_code)
                    if code < 0:
                        err = E_WORD
                        break
                    out_i[row, col] = code
                elif kind == OPTIONAL_FLOAT:
                    a, b = _trimmed(buf, fstart, k)
                    if a == b:
                        out_f[row, col] = np.nan
                    else:
                        e, fv, iv = _parse_field(buf, a, b, FLOAT, pow10)
                        if e != OK:
                            err = e
                            break
                        out_f[row, col] = fv
                elif kind != SKIP:
                    e, fv, iv = _parse_field(buf, fstart, k, kind, pow10)
                    if e != OK:
                        err = e
                        break
                    if kind == FLOAT:
                        out_f[row, col] = fv
                    else:
                        out_i[row, col] = iv
                col += 1
                if k == content_end:
                    break
                fstart = k + 1
            k += 1
        if err == OK and col < ncol:
            err = E_FEW_FIELDS
        if err != OK:
            if first_err == OK:
                first_err = err
                first_line = line
                first_col = col
            if not skip_bad:
                return row, nbad, first_err, first_line, first_col
            if nbad < bad.shape[0]:
                bad[nbad, 0] = line
                bad[nbad, 1] = err
                bad[nbad, 2] = col
            nbad += 1
        else:
            out_line[row] = line
            row += 1
        pos = next_pos
    return row, nbad, first_err, first_line, first_col


KEEP_BAD = 64   # bad lines located in skip mode; the rest are only counted


class ParsedColumns:
    """Result of :func:`parse`: typed columns, source line per row, and skipped lines."""

    def __init__(self, floats, ints, lines, n_bad, bad, first_error):
        self.floats = floats
        self.ints = ints
        self.lines = lines
        self.n_bad = n_bad
        self.bad = bad                  # (line, code, column) of the first KEEP_BAD bad lines
        self.first_error = first_error  # (code, line, column) or None

    @property
    def bad_lines(self) -> np.ndarray:
        return self.bad[:, 0]

    def __len__(self):
        return self.lines.shape[0]


def _parse_block(data: np.ndarray, kinds: np.ndarray, delim: int, line0: int, skip_lines: int, comments: bool,
                 skip_bad: bool, words=NO_WORDS):
    """One block's rows, in arrays sized by what the block can hold, trimmed to what it held."""
    ncol = kinds.shape[0]
    # A good row has ncol fields, non-empty but for OPTIONAL_FLOAT and SKIP ones: at least
    # 2 * required - 1 bytes and a newline between rows. Blank lines make no rows, so they cost no memory.
    required = max(1, int(np.count_nonzero((kinds != OPTIONAL_FLOAT) & (kinds != SKIP))))
    cap = min(int(np.count_nonzero(data == 10)) + 1, (len(data) + 1) // (2 * required) + 1)
    out_f = np.zeros((cap, ncol), dtype=np.float64)
    out_i = np.zeros((cap, ncol), dtype=np.int64)
    out_line = np.zeros(cap, dtype=np.int64)
    bad = np.zeros((KEEP_BAD, 3), dtype=np.int64)
    rows, nbad, err, eline, ecol = _parse(data, kinds, delim, line0, skip_lines, comments, skip_bad,
                                          out_f, out_i, out_line, bad, _POW10, *words)
    first = (int(err), int(eline), int(ecol)) if err != OK else None
    return (out_f[:rows].copy(), out_i[:rows].copy(), out_line[:rows].copy(), int(nbad),
            bad[:min(nbad, KEEP_BAD)], first)


def parse_blocks(blocks: Iterable[tuple[int, bytes]], kinds, *, delimiter: str = ",", skip_lines: int = 0,
                 comments: bool = False, skip_bad: bool = False,
                 words: dict[str, int] | None = None) -> ParsedColumns:
    """Parse numeric CSV given as (lines before, bytes) blocks of whole lines (:func:`feeds.readers.textio.iter_blocks`).

    Returns floats (n x ncol, float64; non-FLOAT columns left 0) and ints
    (n x ncol, int64). Without ``skip_bad`` the parse stops at the first bad
    line and ``first_error`` says where; callers turn that into a DataError.
    ``words`` maps the words WORD columns may hold (lower case) to the codes written.
    """
    kinds_arr = np.asarray(kinds, dtype=np.int64)
    table = name_table(words) if words else NO_WORDS
    parts, n_bad, bad, first = [], 0, [], None
    for line0, block in blocks:
        data = np.frombuffer(block, dtype=np.uint8) if isinstance(block, (bytes, bytearray, memoryview)) else block
        f, i, lines, nb, b, err = _parse_block(data, kinds_arr, ord(delimiter), line0, skip_lines, comments,
                                               skip_bad, table)
        parts.append((f, i, lines))
        n_bad += nb
        bad.append(b)
        first = first or err
        if err is not None and not skip_bad:
            break
    ncol = len(kinds_arr)
    if not parts:
        parts = [(np.zeros((0, ncol)), np.zeros((0, ncol), dtype=np.int64), np.zeros(0, dtype=np.int64))]
    return ParsedColumns(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                         np.concatenate([p[2] for p in parts]), n_bad,
                         np.concatenate([np.zeros((0, 3), dtype=np.int64), *bad])[:KEEP_BAD], first)


def parse(buf: bytes | np.ndarray, kinds, *, delimiter: str = ",", skip_lines: int = 0,
          comments: bool = False, skip_bad: bool = False, words: dict[str, int] | None = None) -> ParsedColumns:
    """Parse numeric CSV bytes held in memory: :func:`parse_blocks` of one block."""
    return parse_blocks([(0, buf)], kinds, delimiter=delimiter, skip_lines=skip_lines, comments=comments,
                        skip_bad=skip_bad, words=words)


def describe_error(code: int, kind: int, words: dict[str, int] | None = None) -> str:
    text = ERROR_TEXT.get(code, f"error {code}")
    if code == E_WORD and words:
        return f"expected one of {', '.join(words)}"
    if code == E_NUMBER:
        return f"expected {KIND_TEXT[kind]}"
    return text


def located_error(code: int, line: int, col: int, kinds, names, where: str,
                  words: dict[str, int] | None = None, column_words: dict[str, tuple] | None = None) -> DataError:
    """A parse error as one line: the file, the line, the column's name and what it expected.

    ``column_words`` names, per WORD column, the words that column takes (all of ``words`` otherwise).
    """
    if code == E_WORD and column_words and names[col] in column_words:
        words = dict.fromkeys(column_words[names[col]], 0)
    if code in (E_FEW_FIELDS, E_MANY_FIELDS):
        got = col if code == E_FEW_FIELDS else "more"
        return DataError(f"expected {len(names)} comma-separated fields, got {got}",
                         path=where, line=line, field="fields")
    return DataError(describe_error(code, kinds[col], words), path=where, line=line, field=names[col])


def parse_located(blocks: Iterable[tuple[int, bytes]], kinds, names, where: str, counter: SkipCounter, *,
                  skip_lines: int = 0, words: dict[str, int] | None = None,
                  column_words: dict[str, tuple] | None = None) -> ParsedColumns:
    """Parse a whole file; every bad line raises or, under skip, is counted with its reason."""
    parsed = parse_blocks(blocks, kinds, skip_bad=counter.policy == "skip", skip_lines=skip_lines, words=words)
    if parsed.first_error is not None and counter.policy == "raise":
        raise located_error(*parsed.first_error, kinds, names, where, words, column_words)
    for i in range(parsed.n_bad):
        if i < len(parsed.bad):
            line, code, col = (int(v) for v in parsed.bad[i])
            counter.bad(located_error(code, line, col, kinds, names, where, words, column_words))
        else:
            counter.bad(DataError("bad line (beyond the first 64, not located)", path=where))
    return parsed
