"""The jitted numeric CSV parser: exact values, exact errors."""
import numpy as np
import pytest

from feeds.readers import csvparse as c


def test_parses_lobster_message_rows_exactly():
    r = c.parse(b"34200.015105074,4,15818974,4,5794000,1\n34200.05,1,2,3,4.5e2,-1\n\n",
                [c.SECONDS_NS, c.INT, c.INT, c.FLOAT, c.FLOAT, c.INT])
    assert r.first_error is None
    assert r.ints[:, 0].tolist() == [34_200_015_105_074, 34_200_050_000_000]
    assert r.ints[:, 2].tolist() == [15818974, 2]
    assert r.floats[:, 4].tolist() == [5794000.0, 450.0]
    assert r.ints[:, 5].tolist() == [1, -1]
    assert r.lines.tolist() == [1, 2]


@pytest.mark.parametrize("text,value", [
    (b"0.1", 0.1), (b"1e-5", 1e-5), (b"-0.0", -0.0), (b"2683.80000000", 2683.8),
    (b"123456789.123456789", 123456789.123456789), (b" 7 ", 7.0), (b"+3.5E2", 350.0),
])
def test_floats_match_python(text, value):
    assert c.parse(text, [c.FLOAT]).floats[0, 0] == value


def test_integers_are_exact_beyond_float_precision():
    r = c.parse(b"1723161255088156767\n", [c.INT])
    assert r.ints[0, 0] == 1723161255088156767


@pytest.mark.parametrize("text,code,line,col", [
    (b"1,2\n1,x\n", c.E_NUMBER, 2, 1),
    (b"1,2\n3\n", c.E_FEW_FIELDS, 2, 1),
    (b"1,2,3\n", c.E_MANY_FIELDS, 1, 2),
    (b"1,\n", c.E_EMPTY, 1, 1),
    (b"nan,1\n", c.E_NUMBER, 1, 0),
    (b"1.5,1\n", c.E_NUMBER, 1, 0),          # INT column with a fraction
    (b"99999999999999999999,1\n", c.E_OVERFLOW, 1, 0),
])
def test_errors_name_line_and_column(text, code, line, col):
    r = c.parse(text, [c.INT, c.FLOAT])
    assert r.first_error == (code, line, col)


def test_seconds_reject_sub_nanosecond_precision():
    r = c.parse(b"1.0000000001\n", [c.SECONDS_NS])
    assert r.first_error == (c.E_PRECISION, 1, 0)


def test_skip_mode_counts_bad_lines_and_keeps_good_ones():
    r = c.parse(b"1,2\n1,x\n3\n4,5\n", [c.INT, c.FLOAT], skip_bad=True)
    assert r.n_bad == 2
    assert r.bad_lines.tolist() == [2, 3]
    assert r.ints[:, 0].tolist() == [1, 4]
    assert r.lines.tolist() == [1, 4]
    assert r.first_error == (c.E_NUMBER, 2, 1)


def test_header_comments_and_crlf():
    r = c.parse(b"a,b\r\n# note\r\n1,2.5\r\n", [c.INT, c.FLOAT], skip_lines=1, comments=True)
    assert r.first_error is None
    assert r.ints[0, 0] == 1 and r.floats[0, 1] == 2.5
    assert r.lines.tolist() == [3]


def test_random_floats_round_trip():
    rng = np.random.default_rng(7)
    values = np.array([round(v, int(d)) for v, d in zip(rng.uniform(-1e6, 1e6, 2000),
                                                         rng.integers(0, 9, 2000))])
    text = "\n".join(repr(float(v)) for v in values).encode()
    assert np.array_equal(c.parse(text, [c.FLOAT]).floats[:, 0], values)
