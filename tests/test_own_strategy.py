"""A user's own strategy class: named in a config, run by ``cmm backtest`` in process and over ZeroMQ, from
Python (``runtime.api.run``) and from the example notebook; every way of naming it wrongly is one line.

The runs use the first 12 minutes of the repo's GOOG sample (test_cmm_variants's slice; the features warm up
in 5), which still holds decisions in the high-volatility regime the example's hook acts on.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from analysis.output import table_csv
from common.config import ConfigError
from runtime.api import run
from runtime.backtest import strategy_entry
from runtime.config import load
from strategies import registry
from tests.conftest import REPO
from tests.test_cmm_variants import sample_slice  # noqa: F401  (the 12-minute slice, a module fixture)

EXAMPLE = REPO / "examples" / "backtest_wide_when_volatile.toml"
CLASS = "examples.wide_when_volatile:WideWhenVolatile"
RESULTS = ("fills.csv", "orders.csv", "ticks.npz", "decisions.npz", "metrics.json")


def example_config(directory, data, **replace: str) -> str:
    """The example's config on ``data``, its paths absolute, some lines replaced (old text -> new text)."""
    text = EXAMPLE.read_text().replace('"../data/samples/GOOG_2012-06-21_10_head.zip"', json.dumps(str(data)))
    text = text.replace('"../data/bundles/goog_sample"', json.dumps(str(REPO / "data" / "bundles" / "goog_sample")))
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    path = directory / f"example_{len(replace)}.toml"
    path.write_text(text)
    return str(path)


def cmm(*args) -> subprocess.CompletedProcess:
    """``cmm`` from the repository root, where ``examples`` is found (the working directory comes first)."""
    return subprocess.run([sys.executable, "-m", "cmm", *map(str, args)], capture_output=True, text=True, cwd=REPO,
                          timeout=300)


@pytest.fixture(scope="module")
def both(sample_slice, tmp_path_factory):  # noqa: F811
    """``cmm backtest`` of the example by name, in process and with --transport zmq: the two results directories."""
    tmp = tmp_path_factory.mktemp("own")
    config = example_config(tmp, sample_slice[0])
    outs = []
    for transport in ("inproc", "zmq"):
        out = tmp / transport
        proc = cmm("backtest", "--config", config, "--out", out, "--transport", transport, "--no-progress")
        assert proc.returncode == 0, proc.stderr
        outs.append(out)
    return config, *outs


def test_the_example_runs_by_name_with_identical_results_in_process_and_over_zmq(both):
    _, inproc, over_zmq = both
    for name in RESULTS:
        assert (inproc / name).read_bytes() == (over_zmq / name).read_bytes(), name
    assert json.loads((inproc / "metrics.json").read_text())["n_fills"] > 0


def test_its_own_hook_widens_the_spread_in_the_high_regime_only(both, tmp_path):
    """Against the same class with the parameter at 0 (CMM itself), decision by decision: the model's spread
    plus 6 ticks in regime 2 (clipped at max_spread_ticks = 200), the same spread in the others."""
    config, inproc, _ = both
    widened = np.load(inproc / "decisions.npz")
    plain = run(example_config(tmp_path, load(config).data.files[0],
                               **{"high_vol_widen_ticks = 6": "high_vol_widen_ticks = 0"}), progress=False).decisions
    assert np.array_equal(widened["ts"], plain["ts"]) and np.array_equal(widened["regime"], plain["regime"])
    high = widened["regime"] == 2
    assert high.sum() > 100 and (~high & (widened["regime"] >= 0)).sum() > 0    # both branches run
    expected = np.where(high, np.minimum(plain["pred_spread_ticks"] + 6, 200), plain["pred_spread_ticks"])
    np.testing.assert_array_equal(widened["pred_spread_ticks"], expected)


def test_the_python_api_gives_cmm_backtest_s_results_and_shows_them(both, tmp_path):
    config, inproc, _ = both
    result = run(config, progress=False)
    assert result.out is None and result.write(tmp_path / "out") == str(tmp_path / "out")
    for name in RESULTS:
        assert (tmp_path / "out" / name).read_bytes() == (inproc / name).read_bytes(), name
    assert table_csv(result.fills) == (inproc / "fills.csv").read_text()
    assert table_csv(result.orders) == (inproc / "orders.csv").read_text()
    assert result.metrics == json.loads((inproc / "metrics.json").read_text())
    assert result.label == "WideWhenVolatile" and "WideWhenVolatile on GOOG" in repr(result)
    fills = result.frame("fills")
    assert list(fills.columns) == (inproc / "fills.csv").read_text().splitlines()[0].split(",")
    assert set(fills["side"]) == {"buy", "sell"} and len(fills) == result.summary.n_fills
    assert len(result.frame("ticks")) == result.summary.ticks
    assert "weight_" in "".join(result.frame("decisions").columns)
    html = result._repr_html_()
    assert "EPnL" in html and "data:image/png;base64," in html
    assert result._repr_png_().startswith(b"\x89PNG")
    figure = result.plot(result)
    assert len(figure.axes) == 2 and [len(ax.lines) for ax in figure.axes] == [2 + 1, 2 + 1]   # + the zero line


@pytest.mark.parametrize("name, expected", [
    ("examples.wide_when_volatile:WideWhenVolatle", "has no 'WideWhenVolatle'; did you mean 'WideWhenVolatile'?"),
    ("examples.wide_when_volatil:WideWhenVolatile", "no module named 'examples.wide_when_volatil'"),
    ("strategies.cmm:Prediction", "is the class Prediction, not a subclass of strategies.base.Strategy"),
    ("strategies.cmm:check_schema", "is a function, not a subclass"),
    ("examples/wide_when_volatile.py", "unknown strategy"),
    ("examples.wide when:X", "expected 'package.module:Class' or 'path/to/file.py:Class'"),
    ("no_such_dir/mine.py:Mine", "no such file"),
])
def test_a_wrong_class_path_is_one_line(name, expected):
    with pytest.raises(ConfigError) as e:
        registry.entry(name, str(EXAMPLE))
    assert expected in str(e.value) and "strategy.name" in str(e.value) and "\n" not in str(e.value)


def test_a_misspelled_class_path_exits_2_with_one_line(tmp_path):
    config = example_config(tmp_path, REPO / "data" / "samples" / "GOOG_2012-06-21_10_head.zip",
                            **{CLASS: CLASS.replace("Volatile", "Volatil")})
    proc = cmm("backtest", "--config", config, "--out", tmp_path / "out")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [f"cmm: error: {config}: strategy.name: "
                                        f"'examples.wide_when_volatile:WideWhenVolatil': the module has no "
                                        f"'WideWhenVolatil'; did you mean 'WideWhenVolatile'?"]
    assert not (tmp_path / "out").exists()


def test_run_refuses_what_it_cannot_run_with_one_line(sample_slice):  # noqa: F811
    """A dict config is checked as a file is; an event array needs an instrument; a class cannot cross to zmq."""
    with pytest.raises(ConfigError, match=r"^<config>: Object missing required field `data`$"):
        run({"strategy": {"name": "fixed_spread"}})
    with pytest.raises(ConfigError, match=r"^<config>: strategy.params.qty: Expected a finite `float` > 0.0$"):
        run({"data": {"files": [str(sample_slice[0])]}, "strategy": {"name": "fixed_spread", "params": {"qty": -1}}})
    with pytest.raises(ConfigError, match=r"^data: instrument.tick_size: the data names no instrument"):
        run({"data": {"files": ["unused"]}, "strategy": {"name": "fixed_spread"}}, data=sample_slice[1])
    with pytest.raises(ConfigError, match=r"strategy.name: --transport zmq builds the strategy from the config"):
        run(str(EXAMPLE), strategy=registry.entry(CLASS, str(EXAMPLE)).python, transport="zmq")


MINE = '''
import msgspec
from strategies.base import Strategy

class MineParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    qty: float = 1.0

class Mine(Strategy):
    Params = MineParams
'''


def test_a_file_class_loads_relative_to_the_config_and_its_params_are_checked(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "mine.py").write_text(MINE)
    (tmp_path / "broken.py").write_text("import math\n\nraise ImportError('needs scipy')\n")
    config = tmp_path / "c.toml"
    text = EXAMPLE.read_text().replace(CLASS, "lib/mine.py:Mine")
    start = text.index("[strategy.params]")
    config.write_text(text[:start] + "[strategy.params]\nqty = 2.5\n\n" + text[text.index("[queue]"):])
    entry, params = strategy_entry(load(str(config)), str(config))
    assert entry.python.__name__ == "Mine" and entry.kernel is None and params.qty == 2.5
    assert registry.entry("lib/mine.py:Mine", str(config)).python is entry.python      # loaded once
    config.write_text(config.read_text().replace("qty = 2.5", 'qty = "x"'))
    with pytest.raises(ConfigError, match=r"strategy.params.qty: Expected `float`, got `str`"):
        strategy_entry(load(str(config)), str(config))
    with pytest.raises(ConfigError, match=rf"importing {tmp_path}/broken.py failed: ImportError: needs scipy "
                                          rf"\({tmp_path}/broken.py:3\)"):
        registry.entry("broken.py:Mine", str(config))


def test_the_example_notebook_runs_and_plots_both(sample_slice):  # noqa: F811
    """examples/compare.ipynb in a real kernel, as Jupyter runs it, on the slice (its DATA parameter)."""
    nbformat = pytest.importorskip("nbformat", reason="the notebook test needs the dev extra (nbclient, ipykernel)")
    nbclient = pytest.importorskip("nbclient", reason="the notebook test needs the dev extra (nbclient, ipykernel)")
    pytest.importorskip("ipykernel", reason="the notebook test needs the dev extra (nbclient, ipykernel)")
    nb = nbformat.read(REPO / "examples" / "compare.ipynb", as_version=4)
    parameters = next(c for c in nb.cells if c.cell_type == "code" and "DATA = None" in c.source)
    parameters.source = parameters.source.replace("DATA = None", f"DATA = {str(sample_slice[0])!r}")
    nbclient.NotebookClient(nb, timeout=240, kernel_name="python3",
                            resources={"metadata": {"path": str(REPO)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    results = [o["data"] for o in outputs if o.output_type == "execute_result"]
    shown = next(d for d in results if "<Result WideWhenVolatile" in d["text/plain"])
    assert "EPnL" in shown["text/html"] and "image/png" in shown
    assert any("Figure" in d["text/plain"] and "image/png" in d for d in results)      # mine.plot(cmm)
    stderr = "".join(o.text for o in outputs if o.output_type == "stream" and o.name == "stderr")
    assert "backtest: 100%" in stderr                                                  # the progress bar, in Jupyter
    printed = "".join(o.text for o in outputs if o.output_type == "stream" and o.name == "stdout")
    assert "WideWhenVolatile" in printed and "cmm " in printed
