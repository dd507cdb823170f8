"""An order the engine refuses before sending (a price outside the book's tick range) does not stop a strategy:
it quotes on, as a kernel does, and the run's summary counts the refusal by reason."""
from __future__ import annotations

import msgspec
import pytest

import feeds
from feeds.readers.base import no_progress
from runtime import backtest, config
from study.shock import inject
from tests.conftest import REPO

SEC = 10**9


@pytest.fixture(scope="module")
def shocked():
    """The GOOG sample with an 800-tick (1.4%) flash move at 20 minutes for 30 s: Avellaneda–Stoikov's variance
    estimate jumps with it, its quotes widen past the engine's 1,000-tick pad around the data's prices."""
    conv = feeds.read([str(REPO / "data" / "samples" / "GOOG_2012-06-21_10_head.zip")], "auto",
                      feeds.ReadOptions(progress=no_progress))
    ev, instrument = conv.events, conv.instrument
    return inject(ev, int(ev["exch_ts"][0] + 1_200 * SEC), 800, 30 * SEC, instrument.tick_size), instrument


def _run(tmp_path, mode, data):
    text = (REPO / "configs" / "backtest_avellaneda_stoikov.toml").read_text()
    text = text.replace('"../data/samples/', f'"{REPO}/data/samples/').replace('mode = "python"', f'mode = "{mode}"')
    path = tmp_path / f"as_{mode}.toml"
    path.write_text(text)
    return backtest.run(config.load(str(path)), str(path), data=data)


def test_avellaneda_stoikov_quotes_on_through_refused_orders_and_counts_them(tmp_path, shocked):
    python = _run(tmp_path, "python", shocked)          # raised OrderRejected: price_out_of_range before
    kernel = _run(tmp_path, "kernel", shocked)
    refused = python.summary.refused_orders
    assert set(refused) == {"price_out_of_range"} and refused["price_out_of_range"] > 0
    assert kernel.summary.refused_orders == refused     # the kernel's refusals are counted the same way
    assert python.summary.epnl == kernel.summary.epnl and len(python.result.fills) == len(kernel.result.fills)
    row = dict(backtest.summary_rows(python))["orders refused before sending"]
    assert row == f"{refused['price_out_of_range']:,} price_out_of_range: the strategy quoted on without them"
    assert msgspec.json.decode(msgspec.json.encode(python.summary))["refused_orders"] == refused


def test_a_run_without_refusals_has_no_refused_orders_entry(tmp_path):
    path = tmp_path / "as.toml"
    path.write_text((REPO / "configs" / "backtest_avellaneda_stoikov.toml").read_text()
                    .replace('"../data/samples/', f'"{REPO}/data/samples/'))
    summary = backtest.run(config.load(str(path)), str(path)).summary
    assert summary.refused_orders is None and "refused_orders" not in msgspec.json.decode(msgspec.json.encode(summary))
