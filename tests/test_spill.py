"""common/spill.py: rows set aside on disk come back byte for byte, in order."""
from __future__ import annotations

import numpy as np

from common.spill import Spill

ROW = np.dtype([("ts", "i8"), ("mid", "f8"), ("nq", "i4")])     # packed, 20 bytes: no padding to hide in


def rows(start: int, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=ROW)
    out["ts"] = np.arange(start, start + n)
    out["mid"] = out["ts"] * 0.5 + 0.1
    out["nq"] = -out["ts"]
    return out


def test_chunks_come_back_in_order_and_take_starts_again():
    s = Spill(ROW)
    assert s.read().dtype == ROW and len(s.read()) == 0 and s._file is None    # nothing spilled: no file
    s.append(rows(0, 3))
    s.append(rows(3, 0))
    s.append(rows(3, 1000)[::2])                                           # a strided view goes in as its rows
    both = np.concatenate([rows(0, 3), rows(3, 1000)[::2]])
    assert s.rows == 503 and s.read().tobytes() == both.tobytes()
    assert s.take().tobytes() == both.tobytes() and s.rows == 0 and len(s.read()) == 0
    s.append(rows(7, 2))
    again = s.read()
    again["ts"][0] = 99                                                     # a writable copy, not the file
    assert s.read()["ts"].tolist() == [7, 8]
    s.close()
    assert s.rows == 0
